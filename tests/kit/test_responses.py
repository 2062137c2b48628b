"""Our JSONResponse writes the same bytes Starlette's did (json.dumps), faster."""

from __future__ import annotations

import json

from starlette.responses import JSONResponse as StarletteJSON

from smsgate.kit.responses import JSONResponse

ANSWERS = [
    {"error": 'phoneNumbers[1]: "+52 123" is not a valid phone number', "code": "validation_error"},
    {
        "id": "cmwzipdui0000l4sbmy6p11ep",
        "recipients": [{"phoneNumber": "+5215512345678", "state": "processing"}],
        "message": '¿Llegó? ñandú 日本語 😀 \\ " \n\t \u2028',
        "deviceId": None,
        "isEncrypted": False,
        "segments": 2,
        "priority": -128,
        "big": 2**62,
        "nested": {"a": [], "b": {}, "c": [1, [2, [3]]]},
    },
    [],
    "text",
    None,
]


def test_the_same_bytes_as_the_standard_library() -> None:
    for answer in ANSWERS:
        ours = JSONResponse(answer).body
        assert ours == StarletteJSON(answer).body, answer
        assert json.loads(bytes(ours)) == answer
