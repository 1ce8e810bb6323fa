"""sampleapp: the notes service that bluegreen releases in its lab."""
