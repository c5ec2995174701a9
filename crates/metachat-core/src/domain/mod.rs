//! The MetaChat domain: users and diary entries, their commands, events,
//! errors and read models.
