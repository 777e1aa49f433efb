"""The media service. Transcoding, audio extraction and subtitles (media issue)."""
