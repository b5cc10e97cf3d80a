"""Privacy: masking of student data before anything leaves the school's machine."""
