"""The limits of the upload route that Gradio has no setting for: at most `MAX_ADD_FILES` files in
one request (Gradio's parser allows 1000), and only the image types vlp reads, judged by the
file's name as Gradio's own `file_types=["image"]` is (the content is vlp's to judge, later).

    launch(..., app_kwargs={"middleware": [Middleware(UploadLimit)]})
"""
from __future__ import annotations

from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException

from vlp.images import IMAGE_EXTENSIONS
from vlp.limits import MAX_ADD_FILES

from demo.inputs import escaped, log


def refuse(sentence: str) -> MultiPartException:
    log.info("refused upload: %s", sentence)
    return MultiPartException(sentence)


class _FileCheck:
    """Reads a multipart body chunk by chunk (nothing kept but the current part's headers) and
    raises MultiPartException at the first file too many or of a type vlp does not read."""

    def __init__(self, boundary: bytes, max_files: int):
        self.max_files = max_files
        self.files = 0
        self.field = self.value = self.disposition = b""
        self.parser = MultipartParser(boundary, {
            "on_header_field": self.on_header_field, "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end, "on_headers_finished": self.on_headers_finished})

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        if self.field.lower() == b"content-disposition":
            self.disposition = self.value
        self.field = self.value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        self.disposition = b""
        if b"filename" not in options:
            return
        self.files += 1
        if self.files > self.max_files:
            raise refuse(f"One upload holds at most {self.max_files} files.")
        name = options[b"filename"].decode("utf-8", errors="replace")
        if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
            raise refuse(f"'{escaped(Path(name).name)}' is not an image file this demo reads "
                         f"({', '.join(IMAGE_EXTENSIONS)}).")


class UploadLimit:
    """ASGI middleware in front of Gradio's `POST …/gradio_api/upload`.

    It parses the body alongside Gradio's own parser, as it streams in, and stops at the first
    file too many or of the wrong type by raising starlette's MultiPartException from the body
    stream: Gradio's parser then deletes the files it had begun and answers 400 with the sentence.
    """

    def __init__(self, app, max_files: int = MAX_ADD_FILES):
        self.app = app
        self.max_files = max_files

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/gradio_api/upload"):
            return await self.app(scope, receive, send)
        _, params = parse_options_header(Headers(scope=scope).get("content-type", ""))
        if b"boundary" not in params:  # not multipart: Gradio refuses it
            return await self.app(scope, receive, send)
        check = _FileCheck(params[b"boundary"], self.max_files)

        async def checked_receive():
            message = await receive()
            if message["type"] == "http.request":
                check.parser.write(message.get("body", b""))
            return message

        return await self.app(scope, checked_receive, send)
