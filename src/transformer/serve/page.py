"""The web page of ``transformer serve``: ``GET /`` and its script and style sheet under ``GET /static/``.

Plain HTML, CSS and JavaScript shipped in the package (``serve/static/``): no framework, no build step, nothing
fetched from elsewhere (the Content-Security-Policy allows this server only). The page calls ``/health`` for
the server's defaults, ``/translate`` for the translation and ``/attention`` for the weights it draws.
"""

from importlib import resources

from fastapi import FastAPI, Response
from starlette.exceptions import HTTPException

# The files the page is made of, with their media types (named here, not guessed from the system's table).
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
PAGE = "index.html"
HEADERS = {
    "Cache-Control": "no-cache",  # revalidate: a new version of the package shows at once
    "X-Content-Type-Options": "nosniff",
}
PAGE_HEADERS = {
    **HEADERS,
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def static_files() -> dict[str, bytes]:
    """The page's files, read from the installed package.

    Raises:
        FileNotFoundError: the package was installed without them (its package data).
    """
    folder = resources.files(__package__).joinpath("static")
    found = {}
    for name in FILES:
        file = folder.joinpath(name)
        if not file.is_file():
            raise FileNotFoundError(f"the web page's file {name} is missing from {folder}; reinstall the package")
        found[name] = file.read_bytes()
    return found


def add_page(app: FastAPI) -> None:
    """Serve the page at ``GET /`` and its other files at ``GET /static/{name}`` (404 for any other name)."""
    files = static_files()

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> Response:
        return Response(files[PAGE], media_type=FILES[PAGE], headers=PAGE_HEADERS)

    @app.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in files or name == PAGE:
            raise HTTPException(404, f"no file {name!r} in the page's static files")
        return Response(files[name], media_type=FILES[name], headers=HEADERS)
