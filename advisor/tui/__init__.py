"""The Textual TUI: a thin front end over advisor.recommend.recommend()."""
