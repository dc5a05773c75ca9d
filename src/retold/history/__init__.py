"""History events and payload codecs."""
