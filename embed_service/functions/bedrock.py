"""bedrock-text: text embeddings from Amazon Bedrock (POST /model/{name}/invoke, signed with SigV4).

Settings as in LanceDB: `name` (the model id: amazon.titan-embed-text-v1 / -v2:0, cohere.embed-english-v3,
cohere.embed-multilingual-v3), `region`, `source_input_type` / `query_input_type` (Cohere models). Credentials
are the operator's, never the caller's to pick: `aws_access_key_id` / `aws_secret_access_key` /
`aws_session_token` as `$var:` references, else the service's own AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_SESSION_TOKEN. LanceDB's `profile_name` and `assumed_role` would let a caller choose among the operator's
profiles and roles, so they are not settings here. A signed request goes only to an endpoint
`--secret-allowed-hosts` admits (bedrock-runtime.<region>.amazonaws.com by default, or `endpoint_url`).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, ClassVar

import numpy as np
import pydantic

from embed_service.errors import SecretNotFound
from embed_service.functions.base import Modality, Purpose, secret_host_refused
from embed_service.functions.http_api import BadAnswer, HttpApiFunction, batches, check_url
from embed_service.functions.registry import register
from embed_service.functions.sigv4 import Credentials, signed_headers

KNOWN_DIMENSIONS = {"amazon.titan-embed-text-v1": 1536, "amazon.titan-embed-text-v2:0": 1024,
                    "cohere.embed-english-v3": 1024, "cohere.embed-multilingual-v3": 1024}
COHERE_TEXTS = 96  # Cohere's limit of texts per request; Titan takes one text per request
MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"  # it goes into the URL's path
REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"


@register("bedrock-text")
class BedrockText(HttpApiFunction):
    description = "Amazon Bedrock text embeddings (Titan, Cohere), signed with the operator's AWS credentials"
    modalities = frozenset({Modality.TEXT})
    secret_settings: ClassVar[tuple[str, ...]] = ("aws_access_key_id", "aws_secret_access_key",
                                                  "aws_session_token")
    needs_key: ClassVar[bool] = True

    name: str = pydantic.Field("amazon.titan-embed-text-v1", pattern=MODEL_ID, description="the model id")
    region: str = pydantic.Field("us-east-1", pattern=REGION, description="the AWS region")
    source_input_type: str = pydantic.Field("search_document", max_length=64, description="Cohere models: rows")
    query_input_type: str = pydantic.Field("search_query", max_length=64, description="Cohere models: queries")
    endpoint_url: str | None = pydantic.Field(None, max_length=2048, description="the Bedrock runtime endpoint, "
                                                                                 "if not the region's")
    aws_access_key_id: str | None = pydantic.Field(None, max_length=256, description="secret reference")
    aws_secret_access_key: str | None = pydantic.Field(None, max_length=256, description="secret reference")
    aws_session_token: str | None = pydantic.Field(None, max_length=256, description="secret reference")

    _credentials: Credentials | None = pydantic.PrivateAttr(None)

    @pydantic.field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return check_url(value, setting="endpoint_url", function="bedrock-text")

    @property
    def api_root(self) -> str:
        return (self.endpoint_url or f"https://bedrock-runtime.{self.region}.amazonaws.com").rstrip("/")

    def key_for(self, url: str) -> str | None:
        trusted = self._runtime.secret_hosts.allows_url(url)
        given = [getattr(self, n) is not None for n in self.secret_settings]
        if any(given) and not trusted:
            raise secret_host_refused("bedrock-text", url)
        if any(given):
            key_id, secret = self.secret("aws_access_key_id"), self.secret("aws_secret_access_key")
            token = self.secret("aws_session_token")
        elif trusted:
            environment = self._runtime.secrets.environment
            key_id, secret = environment("AWS_ACCESS_KEY_ID"), environment("AWS_SECRET_ACCESS_KEY")
            token = environment("AWS_SESSION_TOKEN")
        else:
            key_id = secret = token = None
        if not key_id or not secret:
            raise SecretNotFound("function 'bedrock-text' needs AWS credentials: aws_access_key_id and "
                                 "aws_secret_access_key as '$var:name' references, or AWS_ACCESS_KEY_ID and "
                                 "AWS_SECRET_ACCESS_KEY on the embed service (for an endpoint it may send them to)",
                                 setting="aws_access_key_id", function="bedrock-text")
        self._credentials = Credentials(key_id, secret, token or None)
        return secret

    @property
    def cohere(self) -> bool:
        return self.name.startswith("cohere.")

    def ndims(self) -> int:
        return KNOWN_DIMENSIONS.get(self.name) or self.probe_ndims()

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        if self.cohere:
            input_type = self.query_input_type if purpose is Purpose.QUERY else self.source_input_type
            parts = []
            for chunk in batches(texts, COHERE_TEXTS):
                answer = self.invoke({"texts": list(chunk), "input_type": input_type}, inputs=len(chunk))
                embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
                if isinstance(embeddings, dict):
                    embeddings = embeddings.get("float")
                parts.append(self.vectors(embeddings, len(chunk)))
            return np.concatenate(parts)
        rows = []
        for text in texts:
            answer = self.invoke({"inputText": text}, inputs=1)
            if not isinstance(answer, dict) or "embedding" not in answer:
                raise BadAnswer("no 'embedding' in the answer")
            rows.append(answer["embedding"])
        return self.vectors(rows, len(texts))

    def invoke(self, body: dict[str, Any], inputs: int) -> Any:
        assert self._credentials is not None, "this is a bug: bedrock-text invoked before it loaded"
        url = f"{self.api_root}/model/{urllib.parse.quote(self.name, safe='')}/invoke"
        content = json.dumps(body).encode()
        headers = signed_headers("POST", url, content, self._credentials, self.region, "bedrock")
        headers["Content-Type"] = "application/json"
        return self.post(url, content=content, headers=headers, inputs=inputs)
