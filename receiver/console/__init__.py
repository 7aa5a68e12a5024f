"""The web console at /ui/ (SPEC §11): the team's own screens over the incidents."""
