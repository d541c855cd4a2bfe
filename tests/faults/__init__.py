"""The fault-test suite (issue 8): damaged inputs, interruptions, clear errors."""
