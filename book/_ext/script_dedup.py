"""Each page loads each of its scripts once.

Sphinx 7.4 writes a script that an extension registers after the builder has started into every
page twice (fixed in Sphinx 8, which Jupyter Book 1 does not allow). sphinx-thebe registers such a
script, ``const THEBE_JS_URL = ...``, and the second copy stops with "Identifier 'THEBE_JS_URL' has
already been declared" in every reader's console. This extension drops the later copy of any script
that a page lists twice; ``tests/test_browser.py`` checks that no page logs an error.
"""


def _key(script):
    # the copies differ in one place: the builder files the inline script under filename "" and the
    # late registration under None, so Sphinx's own duplicate check lets both through
    attributes = getattr(script, "attributes", {})
    return getattr(script, "filename", str(script)) or None, tuple(sorted(attributes.items()))


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        if _key(script) not in seen:
            seen.add(_key(script))
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    # late, after every extension has added its scripts to the page
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
