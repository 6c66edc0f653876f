"""One local HTTP server speaking each hosted provider's embeddings API, for tests: Cohere (POST /v2/embed),
Jina and Voyage (POST /v1/embeddings, /v1/multimodalembeddings), Gemini (POST
/v1beta/models/{model}:batchEmbedContents), Ollama (POST /api/embed), watsonx (IBM IAM's POST /identity/token,
then POST /ml/v1/text/embeddings) and Bedrock (POST /model/{id}/invoke, its SigV4 signature recomputed from
what arrived).

Each provider's credential is checked the way that provider checks it (a wrong or missing one: 401). Texts get
the deterministic vectors of `text_vector`, images a vector of their bytes' hash. `fail_next(status, times)`
scripts failures; every request is recorded with its path, headers and JSON body.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.openai_server import LocalHTTPServer, text_vector

KEYS = {"cohere": "co-test-key", "jina": "jina-test-key", "voyageai": "pa-test-key", "gemini-text": "AIza-test",
        "watsonx": "ibm-test-key"}
AWS = {"key_id": "AKIDTESTKEY", "secret": "aws-test-secret/key", "region": "us-east-1"}
IAM_TOKEN = "iam-bearer-token"


def _known_dimensions() -> dict[str, int]:
    """The providers' real models answer with their real dimensions (as the functions' tables give them);
    any other model name gets the server's `dims`."""
    from embed_service.functions import bedrock, cohere, jina, voyageai, watsonx

    tables = (bedrock.KNOWN_DIMENSIONS, cohere.KNOWN_DIMENSIONS, jina.KNOWN_DIMENSIONS,
              voyageai.KNOWN_DIMENSIONS, watsonx.KNOWN_DIMENSIONS)
    return {model: dims for table in tables for model, dims in table.items()}


MODEL_DIMS = _known_dimensions()


def rerank_score(query_words: set[str], document: str) -> float:
    """The local rerank APIs' score: the share of the query's words the document holds."""
    return len(query_words & set(document.lower().split())) / max(1, len(query_words))


def image_vector(data: str, dims: int) -> list[float]:
    return text_vector("image:" + hashlib.sha256(data.encode()).hexdigest(), dims)


class ProviderServer(LocalHTTPServer):
    def __init__(self, dims: int = 16) -> None:
        super().__init__()
        self.dims = dims
        self.wrong_dims = 0  # set: every model answers with this many dimensions (an endpoint serving another)

    def _dims(self, model: str) -> int:
        return self.wrong_dims or MODEL_DIMS.get(model, self.dims)

    def last(self, path_part: str) -> dict[str, Any]:
        return [r for r in self.requests if path_part in r["path"]][-1]

    # ----- the APIs ------------------------------------------------------------------------------------------
    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        try:
            body = json.loads(raw) if raw and headers.get("content-type", "").startswith("application/json") else None
        except ValueError:
            body = None
        form = parse_qs(raw.decode()) if headers.get("content-type", "").startswith("application/x-www-form") else {}
        scripted = self.record({"path": path, "headers": headers, "body": body, "form": form})
        if scripted is not None:
            return scripted, {"message": f"scripted failure {scripted}"}
        route = urlsplit(path).path
        if route in ("/v2/rerank", "/v1/rerank"):
            return self._rerank(route, headers, body)
        if route == "/v2/embed":
            return self._cohere(headers, body)
        if route in ("/v1/embeddings", "/v1/multimodalembeddings"):
            return self._jina_or_voyage(route, headers, body)
        if re.fullmatch(r"/v1beta/models/[^/]+:batchEmbedContents", route):
            return self._gemini(headers, body)
        if route == "/api/embed":
            return 200, {"model": body["model"], "embeddings": [text_vector(t, self.dims) for t in body["input"]]}
        if route == "/identity/token":
            if form.get("apikey") != [KEYS["watsonx"]] or form.get("grant_type", [""])[0].endswith("apikey") is False:
                return 400, {"errorMessage": "Provided API key could not be found"}
            return 200, {"access_token": IAM_TOKEN, "token_type": "Bearer", "expires_in": 3600}
        if route == "/ml/v1/text/embeddings":
            if headers.get("authorization") != f"Bearer {IAM_TOKEN}":
                return 401, {"errors": [{"message": "Failed to authenticate the request"}]}
            if not (body.get("project_id") or body.get("space_id")):
                return 400, {"errors": [{"message": "project_id or space_id is required"}]}
            dims = self._dims(body["model_id"])
            return 200, {"model_id": body["model_id"],
                         "results": [{"embedding": text_vector(t, dims)} for t in body["inputs"]]}
        if re.fullmatch(r"/model/[^/]+/invoke", route):
            return self._bedrock(path, headers, raw)
        return 404, {"message": f"no route {route}"}

    def _rerank(self, route: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        """Cohere's (/v2/rerank), Jina's and Voyage's (/v1/rerank; Voyage's with top_k, its results under
        "data") rerank APIs: a document's score is the share of the query's words it holds, results by score."""
        provider = "cohere" if route == "/v2/rerank" else "voyageai" if "top_k" in body else "jina"
        if not self._bearer(headers, provider):
            return 401, {"message": "invalid api token"}
        words = set(body["query"].lower().split())
        scored = [{"index": i, "relevance_score": rerank_score(words, d)} for i, d in enumerate(body["documents"])]
        scored.sort(key=lambda r: -r["relevance_score"])
        return 200, {"data" if provider == "voyageai" else "results": scored}

    def _bearer(self, headers: dict[str, str], provider: str) -> bool:
        return headers.get("authorization") == f"Bearer {KEYS[provider]}"

    def _cohere(self, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if not self._bearer(headers, "cohere"):
            return 401, {"message": "invalid api token"}
        if body.get("input_type") not in ("search_document", "search_query"):
            return 400, {"message": "invalid input_type"}
        dims = self._dims(body["model"])
        return 200, {"id": "1", "embeddings": {"float": [text_vector(t, dims) for t in body["texts"]]}}

    def _jina_or_voyage(self, route: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        provider = "voyageai" if "input_type" in body else "jina"
        if not self._bearer(headers, provider):
            return 401, {"detail": "Provided API key is invalid."}
        dims = body.get("output_dimension") or self._dims(body["model"])
        vectors = []
        for item in body["inputs"] if route.endswith("multimodalembeddings") else body["input"]:
            if isinstance(item, str):
                vectors.append(text_vector(item, dims))
            elif "content" in item:
                part = item["content"][0]
                vectors.append(text_vector(part["text"], dims) if part["type"] == "text"
                               else image_vector(part["image_base64"], dims))
            elif "text" in item:
                vectors.append(text_vector(item["text"], dims))
            else:
                vectors.append(image_vector(item["image"], dims))
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        return 200, {"object": "list", "data": list(reversed(data)), "model": body["model"]}

    def _gemini(self, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if headers.get("x-goog-api-key") != KEYS["gemini-text"]:
            return 400, {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                   "status": "INVALID_ARGUMENT"}}
        out = []
        for request in body["requests"]:
            dims = request.get("outputDimensionality") or self.dims
            out.append({"values": text_vector(request["content"]["parts"][0]["text"], dims)})
        return 200, {"embeddings": out}

    def _bedrock(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        """The signature AWS would compute from what arrived (the signer is checked against AWS's own test
        suite in test_sigv4): the right credentials, and every signed header and the path intact."""
        import datetime as dt

        from embed_service.functions.sigv4 import Credentials, signed_headers

        try:
            stamp = headers.get("x-amz-date", "")
            moment = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            return 403, {"message": "missing or malformed X-Amz-Date"}
        credentials = Credentials(AWS["key_id"], AWS["secret"], headers.get("x-amz-security-token"))
        expected = signed_headers("POST", self.url + path, raw, credentials, AWS["region"], "bedrock", now=moment)
        if headers.get("authorization") != expected["Authorization"] or headers.get("host") != expected["Host"]:
            return 403, {"message": "The request signature we calculated does not match the signature you provided."}
        body = json.loads(raw)
        model = unquote(urlsplit(path).path.split("/")[2])
        dims = self._dims(model)
        if model.startswith("cohere."):
            return 200, {"embeddings": [text_vector(t, dims) for t in body["texts"]], "id": "1"}
        return 200, {"embedding": text_vector(body["inputText"], dims), "inputTextTokenCount": 3}
