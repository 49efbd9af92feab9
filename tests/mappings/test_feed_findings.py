"""Findings 3-8 of issue 8, each with a message written here in the shape the public samples had."""
from __future__ import annotations

import base64

from simpul.v2 import decode_message
from tests.mappings.conftest import check_bundle, entry_of, make_mapping, msg, resources, seg


def head(kind: str, msh_7: str = "20240115090000+0700", tail: str = "") -> str:
    return f"MSH|^~\\&|SENDAPP|SENDFAC|HUB|RSUD|{msh_7}||{kind}|F-{kind[:3]}|P|2.5.1{tail}"


PID = seg("PID", f1="1", f3="RM-5^^^RSUD^MR", f5="Wijaya^Sari", f7="19900305", f8="F")


# ---- 3. appointments ---------------------------------------------------------------------------

def siu(msh_7: str, sch_25: str, start: str = "20240120093000", end: str = "20240120100000") -> dict:
    sch = seg("SCH", f1="APT-1^SIMRS", f2="APT-1F^SIMRS", f7="^Kontrol", f11=f"^^^{start}^{end}", f25=sch_25)
    bundle = make_mapping().map(msg(head("SIU^S12^SIU_S12", msh_7), sch, PID,
                                    seg("AIS", f1="1", f3="KONTROL^Kontrol poli")))
    check_bundle(bundle)
    return resources(bundle, "Appointment")[0]


def test_siu_times_without_offset_take_msh_7_and_arrived_is_not_booked() -> None:
    appointment = siu("20240115090000+0700", "ARRIVED")
    assert appointment["start"] == "2024-01-20T09:30:00+07:00"
    assert appointment["end"] == "2024-01-20T10:00:00+07:00"
    assert appointment["status"] == "arrived"  # case-insensitive table lookup, no fallback to booked


def test_siu_without_any_zone_is_proposed_with_a_requested_period_not_a_booked_appointment() -> None:
    appointment = siu("20240115090000", "Booked")
    # app-3: a booked Appointment needs start and end; a server would reject this one otherwise.
    assert "start" not in appointment and appointment["status"] == "proposed"
    assert appointment["requestedPeriod"] == [{"start": "2024-01-20", "end": "2024-01-20"}]
    assert appointment["_status"]["extension"][0]["valueCoding"]["code"] == "Booked"


# ---- 4. codes under systems that do not define them -----------------------------------------

def test_marital_unknown_and_other_are_null_flavors_and_medrec_is_mr() -> None:
    for code, expected in (("U", "UNK"), ("O", "OTH")):
        pid = seg("PID", f1="1", f3="448812^^^RSUD^MEDREC~Z99^^^EPIC^EPI", f5="Wijaya^Sari", f16=code)
        bundle = make_mapping().map(msg(head("ADT^A04^ADT_A01"), "EVN|A04", pid))
        check_bundle(bundle)
        patient = resources(bundle, "Patient")[0]
        assert patient["maritalStatus"]["coding"][0] == {
            "system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": expected}
    mr, epi = patient["identifier"][:2]
    assert mr["type"]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
    assert epi["type"] == {"text": "EPI"}  # not a v2-0203 code: no coding claims it is
    assert entry_of(bundle, "Patient")["request"]["url"] == "Patient?identifier=urn:id:RSUD|448812"


# ---- 5. radiology as Epic sends it ------------------------------------------------------------

def test_epic_style_radiology_report_is_narrative_with_impression_and_interpreter() -> None:
    lines = [("GDT", "EXAM: CT HEAD WITHOUT CONTRAST"), ("GDT", "FINDINGS:"),
             ("GDT", "  No acute intracranial hemorrhage."), ("GDT", "  Ventricles are normal."),
             ("IMP", "No acute intracranial abnormality.")]
    obx = [seg("OBX", f1=str(i + 1), f2="TX", f3=f"&{code}", f4="1", f5=text, f11="F")
           for i, (code, text) in enumerate(lines)]
    obr = seg("OBR", f1="1", f2="ORD-7^EPIC", f3="ACC-7^RIS", f4="CTHEAD^CT head w/o contrast^IMGPROC",
              f7="20240115101500", f25="F", f32="D77&Hartono&Rina&&&&MD")
    text = msg(head("ORU^R01^ORU_R01"), PID, seg("ORC", f1="RE", f2="ORD-7^EPIC"), obr,
               "NTE|1||Reason for exam: headache after fall", *obx)
    bundle = make_mapping().map(text)
    check_bundle(bundle)
    assert resources(bundle, "Observation") == []  # text lines are not 5 code-less Observations
    report = resources(bundle, "DiagnosticReport")[0]
    assert report["conclusion"] == "No acute intracranial abnormality."
    full = base64.b64decode(report["presentedForm"][0]["data"]).decode()
    assert "  No acute intracranial hemorrhage." in full and full.startswith("EXAM: CT HEAD")
    reader = [r for r in resources(bundle, "Practitioner") if r["name"][0].get("family") == "Hartono"]
    assert reader and report["resultsInterpreter"][0]["reference"] in {
        e["fullUrl"] for e in bundle["entry"] if e["resource"] is reader[0]}
    request = resources(bundle, "ServiceRequest")[0]
    assert request["note"][0]["text"] == "Reason for exam: headache after fall"


# ---- 6. silently dropped ----------------------------------------------------------------------

def test_base64_pdf_split_over_several_obx_becomes_one_attachment() -> None:
    pdf = base64.b64encode(b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\n%%EOF").decode()
    parts = [pdf[:301], pdf[301:802], pdf[802:]]  # split anywhere, not on a 4-character boundary
    obx = [seg("OBX", f1="1", f2="ED", f3="PDF^Report PDF^L", f4="1", f5=f"^application^pdf^Base64^{parts[0]}", f11="F")]
    obx += [seg("OBX", f1=str(i + 2), f2="ED", f3="PDF^Report PDF^L", f4="1", f5=f"^^^^{p}", f11="F")
            for i, p in enumerate(parts[1:])]
    text = msg(head("ORU^R01^ORU_R01"), PID, seg("OBR", f1="1", f2="P-2", f4="RPT^Report^L", f25="F"), *obx)
    mapping = make_mapping()
    bundle, report = mapping.map_with_report(text)
    check_bundle(bundle)
    (attachment,) = resources(bundle, "DiagnosticReport")[0]["presentedForm"]
    assert attachment["contentType"] == "application/pdf" and attachment["data"] == pdf
    assert not report.skipped


def test_obx_in_adt_tq1_race_ethnicity_and_in1_49_are_mapped() -> None:
    adt = msg(head("ADT^A01^ADT_A01"), "EVN|A01",
              seg("PID", f1="1", f3="RM-5^^^RSUD^MR", f5="Wijaya^Sari", f10="2028-9^Asian^CDCREC",
                  f22="2186-5^Not Hispanic or Latino^CDCREC"),
              seg("PV1", f1="1", f2="I", f19="V-5^^^RSUD^VN"),
              seg("OBX", f1="1", f2="NM", f3="8302-2^Body height^LN", f5="162", f6="cm^cm^UCUM", f11="F"),
              seg("OBX", f1="2", f2="NM", f3="29463-7^Body weight^LN", f5="55.5", f6="kg^kg^UCUM", f11="F"),
              seg("OBX", f1="3", f2="TX", f3="8661-1^Chief complaint^LN", f5="Demam tiga hari", f11="F"),
              seg("IN1", f1="1", f2="JKN", f3="BPJS^^^BPJS", f4="BPJS Kesehatan", f49="0001234567890^^^BPJS"))
    bundle = make_mapping().map(adt)
    check_bundle(bundle)
    observations = {o["code"]["coding"][0]["code"]: o for o in resources(bundle, "Observation")}
    assert observations["8302-2"]["valueQuantity"]["value"] == 162
    assert observations["29463-7"]["encounter"]["reference"] == entry_of(bundle, "Encounter")["fullUrl"]
    assert observations["8661-1"]["valueString"] == "Demam tiga hari"
    patient = resources(bundle, "Patient")[0]
    urls = {e["url"]: e for e in patient["extension"]}
    race = urls["http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"]["extension"]
    assert race[0]["url"] == "ombCategory" and race[0]["valueCoding"]["code"] == "2028-9"
    assert "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity" in urls
    assert resources(bundle, "Coverage")[0]["subscriberId"] == "0001234567890"

    orm = msg(head("ORM^O01^ORM_O01"), PID, seg("ORC", f1="NW", f2="O-9^SIMRS"),
              seg("OBR", f1="1", f2="O-9^SIMRS", f4="2345-7^Glucose^LN"),
              seg("TQ1", f1="1", f7="20240116070000", f8="20240116080000", f9="S"))
    bundle = make_mapping().map(orm)
    check_bundle(bundle)
    request = resources(bundle, "ServiceRequest")[0]
    assert request["priority"] == "stat"
    assert request["occurrencePeriod"] == {"start": "2024-01-16T07:00:00+07:00", "end": "2024-01-16T08:00:00+07:00"}


# ---- 7. local codes ---------------------------------------------------------------------------

def test_local_codes_are_scoped_by_sender_and_known_names_get_canonical_uris() -> None:
    def code_systems(sender: str) -> list[str]:
        text = msg(head("ORU^R01^ORU_R01").replace("SENDFAC", sender), PID,
                   seg("OBR", f1="1", f2="P-3", f4="GLU^Glukosa^L"),
                   seg("OBX", f1="1", f2="CWE", f3="C0001^Result^99LAB", f5="C17998^Unknown^NCIT", f11="F"),
                   seg("OBX", f1="2", f2="CWE", f3="Q1^Question^PHINQUESTION", f5="N^No^CDCPHINVS", f11="F"))
        bundle = make_mapping().map(text)
        check_bundle(bundle)
        obs = resources(bundle, "Observation")
        return [resources(bundle, "ServiceRequest")[0]["code"]["coding"][0]["system"],
                obs[0]["code"]["coding"][0]["system"], obs[0]["valueCodeableConcept"]["coding"][0]["system"],
                obs[1]["valueCodeableConcept"]["coding"][0]["system"]]

    lab_a, lab_b = code_systems("LAB_A"), code_systems("LAB_B")
    assert lab_a[:2] == ["urn:id:local:LAB_A:L", "urn:id:local:LAB_A:99LAB"]
    assert lab_b[0] == "urn:id:local:LAB_B:L" != lab_a[0]
    assert lab_a[2] == "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
    assert lab_a[3] == "urn:oid:2.16.840.1.114222.4.5.274"


# ---- 8. small ones ----------------------------------------------------------------------------

def test_words_for_sex_nte_indentation_reference_range_and_msh_18_8859() -> None:
    pid = seg("PID", f1="1", f3="RM-5^^^RSUD^MR", f5="Wijaya^Sari", f8="Female")
    obx = seg("OBX", f1="1", f2="NM", f3="718-7^Hemoglobin^LN", f5="13.1", f6="g/dL^g/dL^UCUM", f7="12.0-16.0",
              f11="F")
    nte = "NTE|1||Method:\\.br\\    photometric\\.br\\    (lab B)"
    text = msg(head("ORU^R01^ORU_R01", tail="|||||8859"), pid, seg("OBR", f1="1", f2="P-4", f4="CBC^CBC^L"),
               obx, nte)
    decoded, codec = decode_message(text.encode("latin-1"), "8859")
    assert codec == "latin-1"
    bundle = make_mapping().map(decoded)
    check_bundle(bundle)
    assert resources(bundle, "Patient")[0]["gender"] == "female"
    observation = resources(bundle, "Observation")[0]
    assert observation["note"][0]["text"] == "Method:\n    photometric\n    (lab B)"
    (ref_range,) = observation["referenceRange"]
    assert ref_range["low"] == {"value": 12.0, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"}
    assert ref_range["high"]["value"] == 16.0 and ref_range["text"] == "12.0-16.0"
