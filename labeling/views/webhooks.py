"""Pages: a project's webhooks (admins): subscribe a URL (the secret is shown once), the delivery
log with status, attempts and latency, send a test, switch on/off, rotate the secret, delete.

The same services as the API check the rules; their errors land on the form's fields."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from labeling.forms import SERVICE_ERRORS, WebhookForm, attach_errors, error_detail, error_message
from labeling.models import Project, WebhookSubscription
from labeling.selectors.webhooks import (
    webhook_deliveries_list,
    webhook_subscription_get,
    webhook_subscriptions_list,
    webhook_summary,
)
from labeling.services.webhooks import (
    webhook_secret_rotate,
    webhook_send_test,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_update,
)
from labeling.views.settings import configure_access, confirm_page, signed_in_user

NEW_SECRET_SESSION = "flywheel-new-webhook-secret"


def _events_field(location: str) -> str | None:
    return "events" if location.startswith("events") else None


def _show_secret_once(request: HttpRequest, project: Project) -> dict[str, str] | None:
    shown = request.session.pop(NEW_SECRET_SESSION, None) if request.method == "GET" else None
    if shown and shown.get("project") == project.slug:
        return shown
    return None


@login_required
def webhooks(request: HttpRequest, slug: str) -> HttpResponse:
    """List the subscriptions and create one (post/redirect/get; the secret is shown once)."""
    project = configure_access(request, slug)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            sub, secret = webhook_subscription_create(
                project=project,
                url=d["url"],
                events=d["events"],
                description=d["description"],
                created_by=signed_in_user(request),
            )
        except SERVICE_ERRORS as exc:
            attach_errors(form, error_detail(exc), field_for=_events_field)
        else:
            request.session[NEW_SECRET_SESSION] = {
                "project": project.slug,
                "secret": secret,
                "webhook": str(sub.pk),
            }
            return redirect("project-webhook", slug=slug, webhook_id=sub.pk)
    subs = [
        (sub, webhook_summary(subscription=sub))
        for sub in webhook_subscriptions_list(project=project)
    ]
    return render(
        request,
        "labeling/webhooks.html",
        {"project": project, "form": form, "subscriptions": subs},
    )


@login_required
def webhook_detail(request: HttpRequest, slug: str, webhook_id: int) -> HttpResponse:
    """One subscription: its state, the delivery log, and a form to change URL and events."""
    project = configure_access(request, slug)
    sub = webhook_subscription_get(project=project, webhook_id=webhook_id)
    form = WebhookForm(
        request.POST or None,
        initial={"url": sub.url, "events": sub.events, "description": sub.description},
    )
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            webhook_subscription_update(
                subscription=sub,
                data={"url": d["url"], "events": d["events"], "description": d["description"]},
                actor=signed_in_user(request),
            )
        except SERVICE_ERRORS as exc:
            attach_errors(form, error_detail(exc), field_for=_events_field)
        else:
            messages.success(request, "Webhook saved.")
            return redirect("project-webhook", slug=slug, webhook_id=sub.pk)
    status = request.GET.get("status") or None
    try:
        deliveries = webhook_deliveries_list(subscription=sub, status=status)
    except SERVICE_ERRORS:
        deliveries, status = webhook_deliveries_list(subscription=sub), None
    page = Paginator(deliveries.prefetch_related("attempt_log"), 25).get_page(
        request.GET.get("page")
    )
    secret = _show_secret_once(request, project)
    response = render(
        request,
        "labeling/webhook.html",
        {
            "project": project,
            "sub": sub,
            "form": form,
            "summary": webhook_summary(subscription=sub),
            "page": page,
            "status": status or "",
            "new_secret": secret["secret"] if secret and secret["webhook"] == str(sub.pk) else None,
        },
    )
    if secret:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def webhook_action(request: HttpRequest, slug: str, webhook_id: int) -> HttpResponse:
    """``action`` posted: test, enable, disable, rotate (asks first) or delete (asks first)."""
    project = configure_access(request, slug)
    sub = webhook_subscription_get(project=project, webhook_id=webhook_id)
    action = request.POST.get("action", "")
    actor = signed_in_user(request)
    here = redirect("project-webhook", slug=slug, webhook_id=sub.pk)
    if action in ("rotate", "delete") and request.POST.get("confirm") != "1":
        return _confirm(request, project=project, sub=sub, action=action)
    try:
        if action == "test":
            delivery = webhook_send_test(subscription=sub, actor=actor)
            if delivery.status == "delivered":
                messages.success(
                    request,
                    f"Test delivered: HTTP {delivery.response_status} "
                    f"in {delivery.latency_ms:.0f} ms.",
                )
            else:
                messages.error(request, f"Test failed: {delivery.error}")
        elif action in ("enable", "disable"):
            webhook_subscription_update(
                subscription=sub, data={"active": action == "enable"}, actor=actor
            )
            messages.success(
                request,
                "Webhook switched on; waiting deliveries are being sent."
                if action == "enable"
                else "Webhook switched off; new events are not recorded for it.",
            )
        elif action == "rotate":
            secret = webhook_secret_rotate(subscription=sub, actor=actor)
            request.session[NEW_SECRET_SESSION] = {
                "project": project.slug,
                "secret": secret,
                "webhook": str(sub.pk),
            }
        elif action == "delete":
            webhook_subscription_delete(subscription=sub, actor=actor)
            messages.success(request, f"Webhook to {sub.url} deleted.")
            return redirect("project-webhooks", slug=slug)
        else:
            messages.error(request, "Unknown action.")
    except SERVICE_ERRORS as exc:
        messages.error(request, error_message(exc))
    return here


def _confirm(
    request: HttpRequest, *, project: Project, sub: WebhookSubscription, action: str
) -> HttpResponse:
    back = reverse("project-webhook", kwargs={"slug": project.slug, "webhook_id": sub.pk})
    if action == "rotate":
        return confirm_page(
            request,
            project=project,
            title="Rotate the signing secret?",
            lines=[
                f"Deliveries to {sub.url} are signed with a new secret from now on; the receiver "
                "rejects them until it has the new secret.",
                "The new secret is shown once, on the next page.",
            ],
            button="Rotate secret",
            fields=[("action", "rotate")],
            cancel_url=back,
        )
    return confirm_page(
        request,
        project=project,
        title=f"Delete the webhook to {sub.url}?",
        lines=[
            "Its delivery log and any deliveries still waiting are deleted with it.",
            "To stop deliveries for a while, switch it off instead.",
        ],
        button="Delete webhook",
        fields=[("action", "delete")],
        cancel_url=back,
    )
