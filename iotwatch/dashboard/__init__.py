"""``iotwatch dashboard``: a live web page over the stored points and the services' APIs.

    sources     the point stores' common interface and frames
    influxql    InfluxDB 1.x, 2.x, 3.x over InfluxQL (the queries Grafana sends)
    linefile    the detector's file sink (line protocol), read incrementally
    services    the detector's and the alerting service's HTTP APIs (health, metrics, alerts)
    deadletters the newest dead letters from the broker (optional), in memory
    figures     Plotly figures and tables from what those return (pure)
    layout      the page's components
    callbacks   what refreshes when (a timer, the filters)
    app         the wiring: sources + layout + callbacks -> a served page
"""
