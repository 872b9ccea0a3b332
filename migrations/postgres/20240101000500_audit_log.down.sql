DROP TABLE audit.log;
