DROP TABLE avatar.avatars;
