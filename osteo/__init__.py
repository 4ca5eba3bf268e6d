"""osteo: deep-radiomics osteoporosis screening from hip radiographs."""

__version__ = "0.1.0"
