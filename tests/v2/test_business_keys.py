from simpul.v2 import extract_business_keys


def keys(*segments: str):
    return extract_business_keys("\r".join(["MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5.1", *segments]))


def test_the_mrn_is_preferred_over_a_national_id_listed_first():
    found = keys("PID|1||3174012345670001^^^NIK^NNIDN~MR000123^^^RSUD^MR||Budi")
    assert found.patient_id == "MR000123"


def test_patient_internal_id_when_there_is_no_mr_and_else_the_first_repetition():
    assert keys("PID|1||N1^^^NIK^NNIDN~P77^^^RS^PI").patient_id == "P77"
    assert keys("PID|1||A1^^^X~B2^^^Y").patient_id == "A1"
    assert keys('PID|1||""').patient_id == ""


def test_visit_orders_and_accession():
    found = keys("PID|1||M1^^^RS^MR", "PV1|1|I|W^1^1" + "|" * 16 + "V9",
                 "ORC|RE|PLC1|FIL1", "OBR|1|PLC2|FIL2|X^Y^LN" + "|" * 14 + "ACC5")
    assert (found.visit_number, found.placer_number, found.filler_number, found.accession_number) == (
        "V9", "PLC1", "FIL1", "ACC5")


def test_lines_may_end_with_lf_and_segments_are_read_once():
    found = extract_business_keys("MSH|^~\\&|A\nPID|1||FIRST^^^RS^MR\nPID|2||SECOND^^^RS^MR\n")
    assert found.patient_id == "FIRST"
