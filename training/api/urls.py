"""The training app's API routes; each area registers its own in its module."""

from training.api import examples_urls, jobs_urls


def register(router) -> list:
    return [*examples_urls.register(router), *jobs_urls.register(router)]
