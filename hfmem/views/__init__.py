"""Views: every way a report is shown. `views.html` writes the self-contained HTML report."""
