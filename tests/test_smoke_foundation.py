def test_health_reports_database_and_pgvector(anon_client, db):
    response = anon_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["pgvector"].startswith("0.8")
