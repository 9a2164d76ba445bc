//! `route_template`: every path a request can have maps to one of the receiver's route
//! templates (a fixed, small set a host can use as a metrics label), never to the path.

use acr_webhook_core::webhook::route_template;

#[test]
fn paths_map_to_their_route_templates() {
    for (path, route) in [
        ("/acr", "/acr"),
        ("/distribution", "/distribution"),
        ("/eventgrid", "/eventgrid"),
        ("/healthz", "/healthz"),
        ("/events", "/events"),
        ("/events/summary", "/events/summary"),
        (
            "/events/cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
            "/events/{id}",
        ),
        // An event whose id is `summary` is read as `/events/%73ummary`: a one-event read.
        ("/events/%73ummary", "/events/{id}"),
        ("/events/", "/events/{id}"),
        ("/", "/"),
        ("/ui/app.js", "/"),
        ("/ui/app.css", "/"),
        ("/metrics", "other"),
        ("/acr/", "other"),
        ("/ACR", "other"),
        ("/ui/nothing.js", "other"),
        ("/eventsx", "other"),
        ("", "other"),
    ] {
        assert_eq!(route_template(path), route, "{path:?}");
    }
}
