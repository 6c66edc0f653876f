"""Image URIs are read only where the operator allowed: image roots, allowed hosts, no redirects."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import pytest

from tests.helpers import error_info, png, spec, vectors
from vectorlane.embed.v1 import embed_service_pb2 as pb

RED = png((200, 30, 30), pattern=True)


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    (root / "red.png").write_bytes(RED)
    (tmp_path / "secret.png").write_bytes(RED)
    return root


class ImageHost(str):
    """host:port of a local HTTP server; `requests` lists the paths it was asked for."""

    requests: list[str]


@pytest.fixture
def image_host():
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            if self.path == "/slow.png":
                time.sleep(3)
                self.send_response(200)
                self.end_headers()
            elif self.path == "/trickle.png":  # one byte every 0.2 s: 40 s for the whole image
                self.send_response(200)
                self.send_header("Content-Length", "200")
                self.end_headers()
                try:
                    for _ in range(200):
                        self.wfile.write(b"\x89")
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    pass
            elif self.path == "/red.png":
                self.send_response(200)
                self.send_header("Content-Length", str(len(RED)))
                self.end_headers()
                self.wfile.write(RED)
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = ImageHost(f"127.0.0.1:{server.server_address[1]}")
    host.requests = requests
    yield host
    server.shutdown()
    server.server_close()


def embed_uris(embed, tiny_clip, *uris):
    request = pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings()),
                              inputs=[pb.EmbedInput(image_uri=u) for u in uris])
    return vectors(embed.stub.Embed(request))


def reason_of(embed, tiny_clip, uri):
    with pytest.raises(grpc.RpcError) as err:
        embed_uris(embed, tiny_clip, uri)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return error_info(err.value).reason


def test_paths_and_file_uris_under_the_roots_match_the_bytes(start_embed, tiny_clip, image_root):
    embed = start_embed(image_roots=(image_root,))
    from_bytes = vectors(embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings()),
                                                          inputs=[pb.EmbedInput(image_bytes=RED)])))
    got = embed_uris(embed, tiny_clip, str(image_root / "red.png"), f"file://{image_root}/red.png", "red.png")
    for row in got:
        np.testing.assert_allclose(row, from_bytes[0], atol=1e-6)


def test_paths_outside_the_roots_are_refused(start_embed, tiny_clip, image_root):
    embed = start_embed(image_roots=(image_root,))
    assert reason_of(embed, tiny_clip, str(image_root.parent / "secret.png")) == "IMAGE_URI_NOT_ALLOWED"
    assert reason_of(embed, tiny_clip, f"{image_root}/../secret.png") == "IMAGE_URI_NOT_ALLOWED"
    assert reason_of(embed, tiny_clip, "../secret.png") == "IMAGE_URI_NOT_ALLOWED"
    assert reason_of(embed, tiny_clip, "file:///etc/passwd") == "IMAGE_URI_NOT_ALLOWED"
    (image_root / "link.png").symlink_to(image_root.parent / "secret.png")
    assert reason_of(embed, tiny_clip, "link.png") == "IMAGE_URI_NOT_ALLOWED"
    assert reason_of(embed, tiny_clip, "missing.png") == "INVALID_IMAGE_URI"


def test_no_roots_means_no_local_files(embed, tiny_clip, image_root):
    assert reason_of(embed, tiny_clip, str(image_root / "red.png")) == "IMAGE_URI_NOT_ALLOWED"


def test_http_only_to_allowed_hosts(start_embed, tiny_clip, image_host):
    closed = start_embed()
    assert reason_of(closed, tiny_clip, f"http://{image_host}/red.png") == "IMAGE_URI_NOT_ALLOWED"
    other = start_embed(image_allowed_hosts=("images.example.org",))
    assert reason_of(other, tiny_clip, f"http://{image_host}/red.png") == "IMAGE_URI_NOT_ALLOWED"
    assert image_host.requests == []  # refused before any request was made
    open_ = start_embed(image_allowed_hosts=(image_host,))
    assert embed_uris(open_, tiny_clip, f"http://{image_host}/red.png").shape == (1, 128)
    assert reason_of(open_, tiny_clip, f"http://{image_host}/redirect") == "INVALID_IMAGE_URI"
    assert reason_of(open_, tiny_clip, f"http://{image_host}/absent.png") == "INVALID_IMAGE_URI"
    assert reason_of(open_, tiny_clip, "gopher://example/x") == "INVALID_IMAGE_URI"
    assert image_host.requests == ["/red.png", "/redirect", "/absent.png"]  # the redirect was not followed


def test_image_fetches_are_bounded_in_time(start_embed, tiny_clip, image_host):
    embed = start_embed(image_allowed_hosts=(image_host,), image_fetch_timeout_s=0.5)
    with pytest.raises(grpc.RpcError) as err:
        embed_uris(embed, tiny_clip, f"http://{image_host}/slow.png")
    assert error_info(err.value).reason == "INVALID_IMAGE_URI"
    assert "timed out" in err.value.details()  # given up on after 0.5 s, not after the server's 3 s


def test_a_host_trickling_bytes_is_cut_off_at_the_total_deadline(start_embed, tiny_clip, image_host):
    """The timeout bounds the whole fetch, not each read: a byte every 0.2 s never lets a read time out."""
    embed = start_embed(image_allowed_hosts=(image_host,), image_fetch_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        embed_uris(embed, tiny_clip, f"http://{image_host}/trickle.png")
    waited = time.monotonic() - started
    assert error_info(err.value).reason == "INVALID_IMAGE_URI" and "timed out" in err.value.details()
    assert waited < 20, waited  # the server would take 40 s; a per-read timeout would never fire


@pytest.mark.parametrize("port", ["abc", "a:b", "99999", "-1"])
def test_image_urls_with_ports_that_are_not_ports_are_invalid(start_embed, tiny_clip, image_host, port):
    embed = start_embed(image_allowed_hosts=("*",))
    with pytest.raises(grpc.RpcError) as err:
        embed_uris(embed, tiny_clip, f"http://127.0.0.1:{port}/red.png")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err.value).reason == "INVALID_IMAGE_URI"


def test_oversized_images_are_refused(start_embed, tiny_clip):
    embed = start_embed(image_max_bytes=100)
    with pytest.raises(grpc.RpcError) as err:
        embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings()),
                                         inputs=[pb.EmbedInput(image_bytes=RED)]))
    assert error_info(err.value).reason == "IMAGE_TOO_LARGE"
