"""Django admin for sampling strategies, runs and proxy models."""

from django.contrib import admin

from sampling import models


@admin.register(models.SamplingStrategy)
class SamplingStrategyAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "mode", "batch_size", "active")
    list_filter = ("project", "active")


@admin.register(models.SamplingRun)
class SamplingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "status", "pool_size", "selected_count", "created_at")
    list_filter = ("status", "project")


@admin.register(models.ProxyModel)
class ProxyModelAdmin(admin.ModelAdmin):
    list_display = ("project", "version", "status", "kind", "n_labels", "created_at")
