"""GET /dashboard/summary: revenue, invoices, payments and subscriptions figures for a period."""

from billing.http import Request, api
from billing.schemas.dashboard import DashboardQuery, dashboard_out
from billing.services import dashboard
from billing.timeutil import utcnow


@api()
def lambda_handler(req: Request) -> dict:
    query = req.query_model(DashboardQuery)
    return dashboard_out(dashboard.summary(req.scope, query, utcnow()))
