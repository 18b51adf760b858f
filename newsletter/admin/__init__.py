"""Services behind the marketer web UI (``newsletter.api.ui``): one module per page family.

Routes parse the request, call one function here and render its result; these functions hold
the logic (and call the pipeline's stage functions), so they are what a test or another shell
calls too. ``accounts`` (users, passwords, sessions, the login rate limit), ``editor``
(template drafts, versions, publish, live preview, test sends), ``campaigns`` (overviews and
run control), ``segments`` (edit a rule, count and sample), ``lookup`` (a subscriber and why).
"""
