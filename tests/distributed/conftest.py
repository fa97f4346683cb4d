"""The stage fixtures (the smoke MLE root and the answering QAGen) are shared with the distributed tests."""

from tests.stages.conftest import answering_qagen, upstream  # noqa: F401
