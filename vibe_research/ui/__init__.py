"""`vibe-research ui`: a read-only local dashboard over a workspace's ledger and run folders.

`source` is the one module that reads the research side (ledger, state, settings, workspace
paths); `live` reads the run folders' live traces; `charts` lays out the SVG charts; `format`
writes numbers; `views` turns the state into what the pages show; `server` serves them
(templates/ and static/).
"""
