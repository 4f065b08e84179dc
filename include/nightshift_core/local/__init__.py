"""Local stand-ins for external services, used by `make run` and the tests."""
