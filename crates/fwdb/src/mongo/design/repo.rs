//! [`DesignRepo`]: the generic [`VersionedRepository`] of designs, plus what
//! only designs do: lists on their indexes, layer edits, status transitions.
//! Each is a versioned change (stale version: a conflict).

use super::model::{Design, DesignPatch, DesignStatus, Layer};
use super::validate::{check_text, invalid};
use super::MAX_TAG_CHARS;
use crate::error::{Error, ErrorKind, Result};
use crate::mongo::document::decode;
use crate::mongo::exec::MongoExec;
use crate::mongo::versioned::{ChangeScope, VersionedChange, VersionedRepository};
use crate::query::Order;
use crate::repo::Repository;
use mongodb::bson::doc;
use std::collections::HashSet;
use uuid::Uuid;

/// The design repository: the same [`Repository`] trait as PostgreSQL, plus
/// versioned changes with history. Cheap to clone; holds no connection.
pub type DesignRepo = VersionedRepository<Design>;

/// A stored document as a [`Design`] (errors name the field and the document id).
pub fn design_from_doc(d: &mongodb::bson::Document) -> Result<Design> {
    decode(d.clone())
}

fn no_layer(id: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("design has no layer with id `{}`", id.escape_debug()))
}

impl VersionedRepository<Design> {
    /// A user's live designs with this status, newest first (the `userId_1_status_1_createdAt_-1` index).
    pub async fn list_by_user<M: MongoExec>(
        &self,
        exec: &M,
        user: Uuid,
        status: DesignStatus,
        limit: i64,
    ) -> Result<Vec<Design>> {
        let q = self
            .query()
            .filter(Design::USER_ID.eq(user) & Design::STATUS.eq(status.as_str()))
            .order_by(Design::CREATED_AT, Order::Desc)
            .limit(limit);
        self.fetch(exec, &q).await
    }

    /// Live designs having this tag (the `metadata.tags_1` index), newest first.
    pub async fn list_by_tag<M: MongoExec>(&self, exec: &M, tag: &str, limit: i64) -> Result<Vec<Design>> {
        check_text("metadata.tags", tag, MAX_TAG_CHARS)?;
        let q = self.query().filter(Design::TAG.eq(tag)).order_by(Design::CREATED_AT, Order::Desc).limit(limit);
        self.fetch(exec, &q).await
    }

    /// Adds a layer (its id must be new).
    pub async fn add_layer<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        layer: Layer,
    ) -> Result<Design> {
        self.edit_layers(exec, id, expected, by, |layers| {
            layers.push(layer);
            Ok(())
        })
        .await
    }

    /// Replaces the layer with this id.
    pub async fn update_layer<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        layer: Layer,
    ) -> Result<Design> {
        self.edit_layers(exec, id, expected, by, |layers| {
            let slot = layers.iter_mut().find(|l| l.id == layer.id).ok_or_else(|| no_layer(&layer.id))?;
            *slot = layer;
            Ok(())
        })
        .await
    }

    /// Removes the layer with this id.
    pub async fn remove_layer<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        layer_id: &str,
    ) -> Result<Design> {
        self.edit_layers(exec, id, expected, by, |layers| {
            let before = layers.len();
            layers.retain(|l| l.id != layer_id);
            if layers.len() == before {
                return Err(no_layer(layer_id));
            }
            Ok(())
        })
        .await
    }

    /// Sets the layers' order to that of `layer_ids` (every layer, each once): order 0, 1, 2, ...
    pub async fn reorder_layers<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        layer_ids: &[&str],
    ) -> Result<Design> {
        self.edit_layers(exec, id, expected, by, |layers| {
            let distinct: HashSet<&&str> = layer_ids.iter().collect();
            if layer_ids.len() != layers.len() || distinct.len() != layer_ids.len() {
                return Err(invalid("layers", "a reorder must list every layer id exactly once"));
            }
            let mut out = Vec::with_capacity(layers.len());
            for (i, lid) in layer_ids.iter().enumerate() {
                let mut l = layers.iter().find(|l| l.id == *lid).cloned().ok_or_else(|| no_layer(lid))?;
                l.order = i as i64;
                out.push(l);
            }
            *layers = out;
            Ok(())
        })
        .await
    }

    async fn edit_layers<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        edit: impl FnOnce(&mut Vec<Layer>) -> Result<()>,
    ) -> Result<Design> {
        let current = Repository::<Design, M>::get(self, exec, id).await?;
        if current.version != expected {
            return Err(self.diagnose(exec, id, expected, ChangeScope::Live, "").await);
        }
        let mut layers = current.layers;
        edit(&mut layers)?;
        layers.sort_by_key(|l| l.order);
        let mut p = DesignPatch::new(expected, by);
        p.layers = Some(layers);
        Repository::<Design, M>::update(self, exec, id, &p).await
    }

    /// draft → published.
    pub async fn publish<M: MongoExec>(&self, exec: &M, id: Uuid, expected: i64, by: &str) -> Result<Design> {
        self.transition(exec, id, expected, by, &[DesignStatus::Draft], DesignStatus::Published).await
    }

    /// draft or published → archived.
    pub async fn archive<M: MongoExec>(&self, exec: &M, id: Uuid, expected: i64, by: &str) -> Result<Design> {
        self.transition(exec, id, expected, by, &[DesignStatus::Draft, DesignStatus::Published], DesignStatus::Archived)
            .await
    }

    async fn transition<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        from: &[DesignStatus],
        to: DesignStatus,
    ) -> Result<Design> {
        let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let why = format!("only a design that is {} can become {}", allowed.join(" or "), to.as_str());
        let guard = doc! { "status": { "$in": allowed.clone() } };
        let change = VersionedChange {
            changes: doc! { "status": to.as_str() },
            scope: ChangeScope::Live,
            guard: Some((guard, &why)),
        };
        self.change(exec, id, expected, by, change).await
    }
}
