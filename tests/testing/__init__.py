"""Tests for azfinetune.testing (FakeWorkspace against the real azure-ai-ml MLClient)."""
