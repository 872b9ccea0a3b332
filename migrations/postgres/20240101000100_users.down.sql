DROP TABLE shared.users;
