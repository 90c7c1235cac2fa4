"""Sphinx configuration of the book of executed notebooks (``make book``; docs/RUNNING.md, "The book").

:mod:`coftad_lib.reproduce.book` stages the pages (the claims page, one page per executed notebook)
in a temporary source folder and builds them with this folder as Sphinx's configuration folder.
Every choice below serves one requirement: the committed book opens from files (``file://``, no
server, no network) and stays small enough to commit.
"""

project = "COFT-AD reproduction"
copyright = "the COFT-AD reproduction authors"
language = "en"
html_title = "COFT-AD: the executed notebook series"

# myst_nb reads .ipynb and MyST markdown; the notebooks were executed by the runner already.
extensions = ["myst_nb"]
nb_execution_mode = "off"
# Raw HTML in the staged markdown (the links to results/ files outside the book) passes through.
myst_enable_extensions = []

# Furo ships its fonts-free CSS and JS in the package (no CDN) and gives the sidebar TOC and
# previous/next links on every page.
html_theme = "furo"
html_theme_options = {"navigation_with_keys": True}
html_static_path = ["_static"]
html_css_files = ["book.css"]

# Size and noise: no copies of the sources (the notebooks with outputs must not be committed
# twice over), no "show source" links, no build timestamp (a rebuild of the same notebooks is
# byte-identical, so git sees only real changes).
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_use_index = False
html_domain_indices = False
# Search itself works from file:// (searchindex.js is loaded by a <script> tag); the summaries
# under each result are fetched page by page with fetch(), which browsers refuse on file://
# (checked in Chromium: the list shows, the summaries never do), so they are not asked for.
html_show_search_summary = False
# Nothing in the series needs MathJax, which would be loaded from a CDN: keep it out.
mathjax_path = "about:blank"
# The tables reach the notebooks as text/markdown outputs (pipe tables); CommonMark, myst-nb's
# default for outputs, has no tables.
nb_render_markdown_format = "myst"
