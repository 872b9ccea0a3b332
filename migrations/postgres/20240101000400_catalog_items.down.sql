DROP TABLE catalog.items;
