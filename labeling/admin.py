"""Django admin for superusers; project admins use the configuration pages."""

from django.contrib import admin

from labeling import models


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "schema_version", "created_at")
    search_fields = ("slug", "name")


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("project", "user", "role")
    list_filter = ("role", "project")


@admin.register(models.Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ("external_id", "project", "model_version", "occurred_at", "proxy_score")
    list_filter = ("project",)
    search_fields = ("external_id", "conversation_id")
    raw_id_fields = ("project",)


@admin.register(models.QueueItem)
class QueueItemAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "interaction", "status", "overlap", "done_count", "skip_count")
    list_filter = ("status", "is_gold", "project")
    raw_id_fields = ("interaction",)


@admin.register(models.Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "kind", "status", "rows", "created_at")
    list_filter = ("kind", "status")
