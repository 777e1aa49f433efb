"""The qc_vision service. Industrial defect detection on factory images (quality-inspection issue)."""
