"""GET /integrations/mappings?entity_type=&entity_id=: the provider objects linked to one of ours."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.mappings import MappingQuery
from billing.services import mappings


@api()
def lambda_handler(req: Request) -> dict:
    query = req.query_model(MappingQuery)
    found = mappings.for_entity(req.scope, query.entity_type, query.entity_id)
    return page(found, query.limit, query.offset, mappings.mapping_out)
