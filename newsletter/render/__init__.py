"""Render stage: planned message -> standards-compliant email bytes (MJML + sandboxed Jinja).

Public API (modules import lazily; nothing here is re-exported):

    compile.load_template_source(name_or_folder) -> TemplateSource     # shipped or a folder
    compile.TemplateCache(directory=None).get(source) -> CompiledTemplate  # once per version
    context.build_context(render_input, *, settings) -> frozen context     # plain data in
    stored.render_stored(engine, *, message_ids, compiled, settings, now)  # stored messages
        -> {id: RenderedMessage | RenderFailure}: the one recipe (delivery, view, preview)
    stored.stored_inputs(engine, *, message_ids) -> {id: plain render input}
    templates.find_template(name, *, engine) -> TemplateSource  # database, shipped or folder
    render.render_message(compiled, context, *, settings, now) -> RenderedMessage
        .bytes (CRLF RFC 5322, ready for SMTP), .subject, .html, .text, .headers,
        .message_id_header, .recipient, .warnings
    lint.lint_template(source) -> [LintIssue]                              # on save
    preview.preview(template, *, settings, now, engine=None, subscriber=None) -> Preview
    links.MessageLinks(base_url=, secret_key=, message_id=)                # /t/c /t/o /u /p /v URLs

Errors: ``compile.CompileError`` (file:line:column), ``context.ContextError`` (bad input),
``sandbox.RenderError`` and its subclass ``sandbox.TemplateSecurityError``.
The template context is documented in ``context.CONTEXT_FIELDS`` and ``templates/README.md``.
"""
