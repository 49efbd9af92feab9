from __future__ import annotations

import pytest

from simpul.engine.config.channel import Filter
from simpul.engine.filter_expression import compile_expression

FIELDS = {"message_type": "ORU^R01", "sending_facility": "LAB1", "patient_id": "TEST-9", "event": "R01"}


@pytest.mark.parametrize("expression, expected", [
    ("message_type == 'ORU^R01'", True),
    ("message_type == 'ORU^R01' and sending_facility in ('LAB2', 'LAB3')", False),
    ("not patient_id.startswith('TEST')", False),
    ("sending_facility.lower() == 'lab1' or event == 'A01'", True),
    ("'' < patient_id != 'X'", True),
])
def test_expressions_evaluate_over_message_fields(expression, expected):
    assert compile_expression(expression)(FIELDS) is expected


@pytest.mark.parametrize("expression, reason", [
    ("__import__('os').system('true')", "not allowed"),
    ("open('x')", "not allowed"),
    ("patient_name == 'x'", "unknown field 'patient_name'"),
    ("message_type ==", "syntax error"),
    ("message_type is None", "only =="),
])
def test_anything_else_is_refused_with_a_reason(expression, reason):
    with pytest.raises(ValueError, match=reason):
        compile_expression(expression)


def test_filter_model_reports_the_expression_error():
    with pytest.raises(ValueError, match="unknown field"):
        Filter(expression="nope == 'x'")
