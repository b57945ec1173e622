"""Upload handling for POST /api/documents, the only multipart endpoint.

Every uploaded file goes to a temporary file on disk as it arrives (never held in memory,
whatever its size), and the upload stops as soon as a file passes DOCUMENT_MAX_BYTES. The
request-size middleware (raptorflow.middleware) already refuses a declared Content-Length
above the path's limit; this handler catches what a chunked body or a lying length would
slip past it. FileTooLarge becomes a 413 `payload_too_large` (documents.views).
"""

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler


class FileTooLarge(Exception):
    pass


class BoundedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    def new_file(self, *args, **kwargs):
        self.received = 0
        return super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received = getattr(self, "received", 0) + len(raw_data)
        if self.received > settings.DOCUMENT_MAX_BYTES:
            self.file.close()  # the temporary file is deleted with it
            self.request.document_upload_too_large = True
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)
