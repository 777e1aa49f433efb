"""Test-data generators (rendered documents) and the text metrics used to score OCR on them."""
