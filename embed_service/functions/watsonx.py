"""watsonx: IBM watsonx.ai text embeddings (POST {url}/ml/v1/text/embeddings), as LanceDB's `watsonx` calls it.

Settings as in LanceDB: `name` (the model id), `api_key` (`$var:name`, else the service's own
WATSONX_API_KEY), `project_id` or `space_id` (exactly one; else WATSONX_PROJECT_ID / WATSONX_SPACE_ID of the
service), `url` (the region's endpoint, default us-south) and `params` (e.g. truncate_input_tokens). Besides
LanceDB's: `iam_url`, where the key is exchanged for a bearer token (IBM Cloud's IAM unless said), kept until
a minute before it expires. The key goes only to the IAM endpoint and the token only to `url`, each one an
endpoint `--secret-allowed-hosts` admits.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, ClassVar

import numpy as np
import pydantic

from embed_service.errors import InvalidSettings, SecretNotFound
from embed_service.functions.base import Modality, Purpose, secret_host_refused
from embed_service.functions.http_api import ApiStatusError, BadAnswer, HttpApiFunction, batches, check_url
from embed_service.functions.registry import register

DEFAULT_URL = "https://us-south.ml.cloud.ibm.com"
DEFAULT_IAM_URL = "https://iam.cloud.ibm.com"
API_VERSION = "2024-05-01"
TOKEN_MARGIN_S = 60.0
KNOWN_DIMENSIONS = {
    "ibm/granite-embedding-278m-multilingual": 768, "ibm/slate-125m-english-rtrvr-v2": 768,
    "ibm/slate-30m-english-rtrvr-v2": 384, "intfloat/multilingual-e5-large": 1024,
    "sentence-transformers/all-minilm-l6-v2": 384, "ibm/slate-125m-english-rtrvr": 768,
    "ibm/slate-30m-english-rtrvr": 384, "sentence-transformers/all-minilm-l12-v2": 384,
}
MAX_PARAMS = 16


@register("watsonx")
class WatsonxEmbeddings(HttpApiFunction):
    description = "IBM watsonx.ai text embeddings"
    modalities = frozenset({Modality.TEXT})
    secret_settings: ClassVar[tuple[str, ...]] = ("api_key",)
    needs_key: ClassVar[bool] = True

    name: str = pydantic.Field("ibm/slate-125m-english-rtrvr", max_length=256, description="the model id")
    api_key: str | None = pydantic.Field(None, max_length=256, description="secret reference: $var:name")
    project_id: str | None = pydantic.Field(None, max_length=128, description="watsonx.ai project id")
    space_id: str | None = pydantic.Field(None, max_length=128, description="watsonx.ai deployment space id")
    url: str = pydantic.Field(DEFAULT_URL, max_length=2048, description="the region's watsonx.ai endpoint")
    iam_url: str = pydantic.Field(DEFAULT_IAM_URL, max_length=2048, description="where the key is exchanged "
                                                                                "for a token")
    params: dict[str, Any] | None = pydantic.Field(None, description="embedding parameters, e.g. "
                                                                     "truncate_input_tokens")
    batch_size: int = pydantic.Field(1000, ge=1, le=1000, description="texts per API request")

    _token: str | None = pydantic.PrivateAttr(None)
    _token_until: float = pydantic.PrivateAttr(0.0)
    _token_lock: Any = pydantic.PrivateAttr(default_factory=threading.Lock)

    @pydantic.field_validator("url", "iam_url")
    @classmethod
    def _http_url(cls, value: str, info: pydantic.ValidationInfo) -> str:
        return check_url(value, setting=info.field_name or "url", function="watsonx") or value

    @pydantic.field_validator("params")
    @classmethod
    def _few_params(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(value) > MAX_PARAMS:
            raise ValueError(f"at most {MAX_PARAMS} parameters")
        return value

    @pydantic.model_validator(mode="after")
    def _one_container(self) -> "WatsonxEmbeddings":
        if self.project_id and self.space_id:
            raise InvalidSettings("function 'watsonx': give project_id or space_id, not both", function="watsonx",
                                  setting="project_id")
        return self

    def key_for(self, url: str) -> str | None:
        self.check_endpoint(self.iam_url)
        key = self.secret("api_key") if self.api_key is not None else None
        trusted = self._runtime.secret_hosts.allows_url(self.iam_url)
        if key is not None and not trusted:
            raise secret_host_refused("watsonx", self.iam_url)
        if key is None and trusted:
            key = self._runtime.secrets.environment("WATSONX_API_KEY")
        if key is None:
            raise SecretNotFound("function 'watsonx' needs a key: api_key: '$var:name', or WATSONX_API_KEY on the "
                                 "embed service", setting="api_key", function="watsonx")
        if not self._runtime.secret_hosts.allows_url(self.url):  # the token is a secret too
            raise secret_host_refused("watsonx", self.url)
        return key

    def container(self) -> dict[str, str]:
        project, space = self.project_id, self.space_id
        if not project and not space:
            project, space = os.environ.get("WATSONX_PROJECT_ID"), os.environ.get("WATSONX_SPACE_ID")
        if project and space:
            raise InvalidSettings("function 'watsonx': the service has both WATSONX_PROJECT_ID and "
                                  "WATSONX_SPACE_ID; give project_id or space_id", function="watsonx",
                                  setting="project_id")
        if not project and not space:
            raise InvalidSettings("function 'watsonx' needs project_id or space_id", function="watsonx",
                                  setting="project_id")
        return {"project_id": project} if project else {"space_id": str(space)}

    @property
    def api_root(self) -> str:
        return self.url.rstrip("/")

    def ndims(self) -> int:
        return KNOWN_DIMENSIONS.get(self.name) or self.probe_ndims()

    def token(self) -> str:
        with self._token_lock:
            if self._token is None or time.monotonic() >= self._token_until:
                answer = self.post(f"{self.iam_url.rstrip('/')}/identity/token",
                                   form={"grant_type": "urn:ibm:params:oauth:grant-type:apikey",
                                         "apikey": self._key or ""},
                                   headers={"Content-Type": "application/x-www-form-urlencoded"}, inputs=0)
                token = answer.get("access_token") if isinstance(answer, dict) else None
                if not isinstance(token, str) or not token:
                    raise BadAnswer("the IAM answer holds no access_token")
                lifetime = answer.get("expires_in", 3600)
                lifetime = float(lifetime) if isinstance(lifetime, (int, float)) else 3600.0
                self._runtime.secrets.redactor.remember(token)  # a credential: never in an error or a log
                self._token, self._token_until = token, time.monotonic() + max(0.0, lifetime - TOKEN_MARGIN_S)
            return self._token

    def _with_token(self, url: str, body: dict[str, Any], inputs: int) -> Any:
        """POSTs with the bearer token; a token the endpoint no longer takes (401) is replaced once."""
        try:
            return self.post(url, body, headers={"Authorization": f"Bearer {self.token()}"}, inputs=inputs)
        except ApiStatusError as exc:
            if exc.status != 401:
                raise
            with self._token_lock:
                self._token = None
            return self.post(url, body, headers={"Authorization": f"Bearer {self.token()}"}, inputs=inputs)

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        container = self.container()
        parts = []
        for chunk in batches(texts, self.batch_size):
            body: dict[str, Any] = {"inputs": list(chunk), "model_id": self.name, **container}
            if self.params:
                body["parameters"] = self.params
            answer = self._with_token(f"{self.api_root}/ml/v1/text/embeddings?version={API_VERSION}", body,
                                      inputs=len(chunk))
            results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
                raise BadAnswer("no list of results")
            parts.append(self.vectors([r.get("embedding") for r in results], len(chunk)))
        return np.concatenate(parts)
