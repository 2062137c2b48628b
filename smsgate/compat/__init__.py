"""/api/3rdparty/v1: the SMS Gateway for Android ecosystem's client API, over our own services."""
