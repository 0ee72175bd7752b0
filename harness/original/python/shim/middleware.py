"""Adapter: runs the original's old-style SignatureRejectionMiddleware as new-style middleware."""
from alice.middleware import SignatureRejectionMiddleware


class SignatureRejection:
    def __init__(self, get_response):
        self.get_response = get_response
        self.middleware = SignatureRejectionMiddleware()

    def __call__(self, request):
        return self.middleware.process_request(request) or self.get_response(request)
