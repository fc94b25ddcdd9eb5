//! `/docs`: Swagger UI over the node's own `/openapi.json`, from assets embedded in the binary
//! (`assets/swagger-ui/`, see its PROVENANCE.md), so it works on a cluster without internet.

use actix_web::{web, HttpResponse};

const BUNDLE: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>StreamForge admin API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
  </script>
</body>
</html>
"##;

async fn page() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(PAGE)
}

async fn bundle() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=86400"))
        .body(BUNDLE)
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=86400"))
        .body(CSS)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/docs", web::get().to(page))
        .route("/docs/swagger-ui-bundle.js", web::get().to(bundle))
        .route("/docs/swagger-ui.css", web::get().to(css));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_loads_the_embedded_assets_and_the_document() {
        for needle in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "url: \"/openapi.json\""] {
            assert!(super::PAGE.contains(needle), "{needle}");
        }
        assert!(super::BUNDLE.len() > 1_000_000 && super::CSS.len() > 100_000);
    }
}
