"""The only door to AWS: sessions, error classification, call recording (only boto3 importer)."""
