"""Confidential Clean Room: confidential machine-learning inference in a TEE."""
