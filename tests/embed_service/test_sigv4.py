"""bedrock-text's SigV4 signer against known signatures: three cases of AWS's published SigV4 test suite
(get-vanilla, post-vanilla, get-vanilla-query-order-key-case: example.amazonaws.com, service "service",
us-east-1, 20150830T123600Z, the suite's AKIDEXAMPLE key), and two Bedrock requests whose signatures botocore
1.44 computed on 2026-12-05 (a model id with ':' in the path, encoded twice in the canonical request, and
temporary credentials). botocore itself cannot be installed beside the project's pins (it wants
python-dateutil < 3), so its answers are recorded here."""

from __future__ import annotations

import datetime as dt

import pytest

from embed_service.functions.sigv4 import Credentials, host_header, signed_headers

SUITE_KEY = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = dt.datetime(2015, 8, 30, 12, 36, 0, tzinfo=dt.timezone.utc)
BEDROCK = "https://bedrock-runtime.eu-west-3.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke"


@pytest.mark.parametrize(("method", "url", "signature"), [
    ("GET", "https://example.amazonaws.com/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("POST", "https://example.amazonaws.com/", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
])
def test_aws_test_suite_signatures(method, url, signature):
    headers = signed_headers(method, url, b"", SUITE_KEY, "us-east-1", "service", now=SUITE_TIME)
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}")
    assert headers["X-Amz-Date"] == "20150830T123600Z" and headers["Host"] == "example.amazonaws.com"


@pytest.mark.parametrize(("token", "signature"), [
    (None, "88165e025402661f6d03886b708530a70643b485526c0093857ce8e49a3e8bf0"),
    ("session/token+value=", "effef80b75f5fd507391a18f61c9e382efe8ce17a8818bf74a3495cd85eadb7f"),
])
def test_bedrock_signatures_botocore_computed(token, signature):
    credentials = Credentials(SUITE_KEY.access_key_id, SUITE_KEY.secret_access_key, token)
    headers = signed_headers("POST", BEDROCK, b'{"inputText": "hello"}', credentials, "eu-west-3", "bedrock",
                             now=dt.datetime(2026, 12, 5, 23, 59, 58, tzinfo=dt.timezone.utc))
    assert headers["Authorization"].endswith(f"Signature={signature}")
    assert headers.get("X-Amz-Security-Token") == token


def test_the_host_header_names_a_port_only_when_it_is_not_the_schemes():
    assert host_header("https://h.example.com:443/x") == "h.example.com"
    assert host_header("http://127.0.0.1:8080/x") == "127.0.0.1:8080"
    assert host_header("http://[::1]:9000/") == "[::1]:9000"
