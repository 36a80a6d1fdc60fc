"""The web dashboard, ``floxide ui``: runs, a run's live graph, workers, and a JSON API.

A FastAPI application (:func:`floxide.ui.app.create_app`) served by uvicorn, reading the
same Redis stores the ``floxide`` commands read and steering runs with the same actions
(``pause``, ``resume``, ``cancel``, ``retry``; only when actions are allowed):

* :mod:`~floxide.ui.models` — the JSON the API returns (pydantic; the OpenAPI document at
  ``/openapi.json`` is generated from them);
* :mod:`~floxide.ui.data` — reads and actions on Redis, behind :class:`~floxide.ui.data.Dashboard`;
* :mod:`~floxide.ui.api` — ``/api/...``: runs, a run, a node of a run, its picture, workers, actions;
* :mod:`~floxide.ui.events` — server-sent events: the runs list and a run, pushed as they change;
* :mod:`~floxide.ui.hub` — one reader per watched subject, shared by everyone watching it;
* :mod:`~floxide.ui.pages` — the HTML pages (Jinja2 templates, a little plain JavaScript);
* :mod:`~floxide.ui.app` — the application: settings, the Redis client's lifetime, the routes.

What belongs here: presenting runs over HTTP. What does not: reading Redis keys (that is
:mod:`floxide.redis.overview` and the stores), the rules of a run's node states
(:mod:`floxide.run_view`) and drawing it (:mod:`floxide.run_picture`). Needs the ``ui``
extra (``pip install 'floxide[ui]'``).
"""
