"""The local emulator stack (Pub/Sub, BigQuery, Cloud Storage) on 127.0.0.1."""

from localstack.services import StackError
from localstack.stack import LocalStack

__all__ = ["LocalStack", "StackError"]
