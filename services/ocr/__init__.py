"""The ocr service. Document text extraction: PDF text layers and PP-OCRv4 through the gateway (document issue)."""
