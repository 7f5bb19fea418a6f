//! Images: reference → manifest → ordered layers, with layers shared across manifests.
//!
//! Layer rows outlive the manifests that used them: [`Store::remove_image`] reports the layers
//! it left unused, the caller deletes their files and then [`Store::delete_layer`]s them. A
//! crash in between leaves rows that [`Store::orphan_layers`] finds again for a prune.

use crate::validate::validate;
use crate::{Store, StoreError};
use msb_types::{ImageConfig, ImageRecord, LayerRecord, Platform};
use rusqlite::{OptionalExtension, Transaction};

/// A layer as read from the database, sizes not yet checked.
type RawLayer = (String, String, String, i64, i64);

impl Store {
    /// Stores `image` under its reference, replacing what the reference pointed at before.
    ///
    /// Layers are shared by `diff_id`. A manifest that no reference uses any more is dropped;
    /// its layers that nothing else uses show up in [`Store::orphan_layers`].
    pub fn put_image(&self, image: &ImageRecord) -> Result<(), StoreError> {
        let checked = validate(image)?;
        let config_json = serde_json::to_string(&image.config).map_err(|e| StoreError::InvalidImage {
            reference: image.reference.clone(),
            reason: format!("its config cannot be encoded: {e}"),
        })?;
        self.write(&format!("store image '{}'", image.reference), |tx| {
            let old_manifest: Option<i64> = tx
                .query_row(
                    "SELECT manifest_id FROM image_ref WHERE reference = ?1",
                    [&image.reference],
                    |row| row.get(0),
                )
                .optional()
                .map_err(self.db_err("look up the image reference"))?;
            let p = &image.platform;
            let manifest_id: i64 = tx
                .query_row(
                    "INSERT INTO manifest (digest, config_digest, os, architecture, variant, config_json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (digest) DO UPDATE SET
                         config_digest = excluded.config_digest, os = excluded.os,
                         architecture = excluded.architecture, variant = excluded.variant,
                         config_json = excluded.config_json
                     RETURNING id",
                    (
                        &image.manifest_digest,
                        &image.config_digest,
                        &p.os,
                        &p.architecture,
                        &p.variant,
                        &config_json,
                    ),
                    |row| row.get(0),
                )
                .map_err(self.db_err("store the manifest"))?;
            tx.execute("DELETE FROM manifest_layer WHERE manifest_id = ?1", [manifest_id])
                .map_err(self.db_err("clear the manifest's layers"))?;
            let mut upsert_layer = tx
                .prepare_cached(
                    "INSERT INTO layer (diff_id, blob_digest, media_type, compressed_size, erofs_size)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (diff_id) DO UPDATE SET
                         blob_digest = excluded.blob_digest, media_type = excluded.media_type,
                         compressed_size = excluded.compressed_size, erofs_size = excluded.erofs_size
                     RETURNING id",
                )
                .map_err(self.db_err("prepare the layer upsert"))?;
            let mut link = tx
                .prepare_cached(
                    "INSERT INTO manifest_layer
                         (manifest_id, position, layer_id, blob_digest, media_type, compressed_size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(self.db_err("prepare the manifest layer insert"))?;
            for (position, (layer, (compressed, erofs))) in image.layers.iter().zip(&checked.sizes).enumerate() {
                let layer_id: i64 = upsert_layer
                    .query_row(
                        (&layer.diff_id, &layer.blob_digest, &layer.media_type, compressed, erofs),
                        |row| row.get(0),
                    )
                    .map_err(self.db_err(&format!("store layer {}", layer.diff_id)))?;
                link.execute((
                    manifest_id,
                    position as i64,
                    layer_id,
                    &layer.blob_digest,
                    &layer.media_type,
                    compressed,
                ))
                .map_err(self.db_err(&format!("link layer {} at position {position}", layer.diff_id)))?;
            }
            tx.execute(
                "INSERT INTO image_ref (reference, manifest_id, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (reference) DO UPDATE SET
                     manifest_id = excluded.manifest_id, created_at = excluded.created_at",
                (&image.reference, manifest_id, image.created_at),
            )
            .map_err(self.db_err("store the image reference"))?;
            if let Some(old) = old_manifest.filter(|old| *old != manifest_id) {
                self.drop_manifest_if_unused(tx, old)?;
            }
            Ok(())
        })
    }

    /// The image stored under exactly `reference`, if any.
    pub fn get_image(&self, reference: &str) -> Result<Option<ImageRecord>, StoreError> {
        self.read(&format!("read image '{reference}'"), |tx| self.image_in(tx, reference))
    }

    /// All images with their size on disk (EROFS bytes of their distinct layers), newest first.
    pub fn list_images(&self) -> Result<Vec<(ImageRecord, u64)>, StoreError> {
        self.read("list images", |tx| {
            let references: Vec<String> = {
                let mut stmt = tx
                    .prepare("SELECT reference FROM image_ref ORDER BY created_at DESC, reference")
                    .map_err(self.db_err("list image references"))?;
                let rows = stmt
                    .query_map([], |row| row.get(0))
                    .map_err(self.db_err("list image references"))?;
                rows.collect::<Result<_, _>>()
                    .map_err(self.db_err("list image references"))?
            };
            let mut images = Vec::with_capacity(references.len());
            for reference in references {
                if let Some(image) = self.image_in(tx, &reference)? {
                    let size = total_size(&image.layers);
                    images.push((image, size));
                }
            }
            Ok(images)
        })
    }

    /// Removes `reference`; returns the layers that no manifest uses any more.
    ///
    /// The manifest goes too once no reference points at it and no sandbox pins it. While
    /// sandboxes pin it, removal is refused unless `force`. The returned layers' rows stay
    /// until [`Store::delete_layer`], so the caller deletes their files first.
    pub fn remove_image(&self, reference: &str, force: bool) -> Result<Vec<LayerRecord>, StoreError> {
        self.write(&format!("remove image '{reference}'"), |tx| {
            if !force {
                let users = self.pinning_sandboxes(tx, reference)?;
                if !users.is_empty() {
                    return Err(StoreError::ImageInUse {
                        reference: reference.to_string(),
                        sandboxes: users,
                    });
                }
            }
            let manifest_id: i64 = tx
                .query_row(
                    "DELETE FROM image_ref WHERE reference = ?1 RETURNING manifest_id",
                    [reference],
                    |row| row.get(0),
                )
                .optional()
                .map_err(self.db_err("delete the image reference"))?
                .ok_or_else(|| StoreError::ImageNotFound {
                    reference: reference.to_string(),
                })?;
            self.drop_manifest_if_unused(tx, manifest_id)
        })
    }

    /// The layers of the manifest `digest`, bottom first.
    pub fn manifest_layers(&self, digest: &str) -> Result<Vec<LayerRecord>, StoreError> {
        self.read(&format!("read manifest {digest}"), |tx| {
            let id: i64 = tx
                .query_row("SELECT id FROM manifest WHERE digest = ?1", [digest], |row| row.get(0))
                .optional()
                .map_err(self.db_err("read the manifest"))?
                .ok_or_else(|| StoreError::ManifestNotFound {
                    digest: digest.to_string(),
                })?;
            self.layers_of(tx, id)
        })
    }

    /// Deletes manifests that no reference names and no sandbox pins; returns the layers
    /// they orphaned.
    pub fn drop_unused_manifests(&self) -> Result<Vec<LayerRecord>, StoreError> {
        self.write("drop unused manifests", |tx| {
            let ids: Vec<i64> = {
                let mut stmt = tx
                    .prepare("SELECT id FROM manifest WHERE NOT EXISTS (SELECT 1 FROM image_ref r WHERE r.manifest_id = manifest.id)")
                    .map_err(self.db_err("list unreferenced manifests"))?;
                let rows = stmt
                    .query_map([], |row| row.get(0))
                    .map_err(self.db_err("list unreferenced manifests"))?;
                rows.collect::<Result<_, _>>()
                    .map_err(self.db_err("list unreferenced manifests"))?
            };
            let mut orphaned = Vec::new();
            for id in ids {
                orphaned.extend(self.drop_manifest_if_unused(tx, id)?);
            }
            Ok(orphaned)
        })
    }

    /// Sandboxes pinning the manifest that `reference` names.
    fn pinning_sandboxes(&self, tx: &Transaction<'_>, reference: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = tx
            .prepare(
                "SELECT s.name FROM sandbox s JOIN manifest m ON m.digest = s.manifest_digest
                 JOIN image_ref r ON r.manifest_id = m.id WHERE r.reference = ?1 ORDER BY s.name",
            )
            .map_err(self.db_err("list the sandboxes using the image"))?;
        let rows = stmt
            .query_map([reference], |row| row.get(0))
            .map_err(self.db_err("list the sandboxes using the image"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.db_err("list the sandboxes using the image"))
    }

    /// Layers that no manifest uses: left over by [`Store::remove_image`] or a re-pull.
    pub fn orphan_layers(&self) -> Result<Vec<LayerRecord>, StoreError> {
        self.read("list unused layers", |tx| {
            let raw: Vec<RawLayer> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT diff_id, blob_digest, media_type, compressed_size, erofs_size
                         FROM layer l
                         WHERE NOT EXISTS (SELECT 1 FROM manifest_layer ml WHERE ml.layer_id = l.id)
                         ORDER BY diff_id",
                    )
                    .map_err(self.db_err("list unused layers"))?;
                let rows = stmt
                    .query_map([], raw_layer)
                    .map_err(self.db_err("list unused layers"))?;
                rows.collect::<Result<_, _>>()
                    .map_err(self.db_err("list unused layers"))?
            };
            raw.into_iter().map(|r| self.layer(r)).collect()
        })
    }

    /// Forgets layer `diff_id` if no manifest uses it; false if it is in use or unknown.
    pub fn delete_layer(&self, diff_id: &str) -> Result<bool, StoreError> {
        self.write(&format!("delete layer {diff_id}"), |tx| {
            let n = tx
                .execute(
                    "DELETE FROM layer WHERE diff_id = ?1 AND NOT EXISTS
                         (SELECT 1 FROM manifest_layer ml WHERE ml.layer_id = layer.id)",
                    [diff_id],
                )
                .map_err(self.db_err("delete the layer"))?;
            Ok(n == 1)
        })
    }

    /// Records that `reference` (and its layers) was used just now.
    pub fn touch_image(&self, reference: &str) -> Result<(), StoreError> {
        let now = crate::now();
        self.write(&format!("mark image '{reference}' used"), |tx| {
            let manifest_id: i64 = tx
                .query_row(
                    "UPDATE image_ref SET last_used_at = ?2 WHERE reference = ?1 RETURNING manifest_id",
                    (reference, now),
                    |row| row.get(0),
                )
                .optional()
                .map_err(self.db_err("update the image reference"))?
                .ok_or_else(|| StoreError::ImageNotFound {
                    reference: reference.to_string(),
                })?;
            tx.execute(
                "UPDATE layer SET last_used_at = ?2
                 WHERE id IN (SELECT layer_id FROM manifest_layer WHERE manifest_id = ?1)",
                (manifest_id, now),
            )
            .map_err(self.db_err("update the image's layers"))?;
            Ok(())
        })
    }

    /// When `reference` was last used (see [`Store::touch_image`]); `None` if never.
    pub fn image_last_used(&self, reference: &str) -> Result<Option<i64>, StoreError> {
        self.read(&format!("read image '{reference}'"), |tx| {
            tx.query_row(
                "SELECT last_used_at FROM image_ref WHERE reference = ?1",
                [reference],
                |row| row.get::<_, Option<i64>>(0),
            )
            .optional()
            .map_err(self.db_err("read the image reference"))?
            .ok_or_else(|| StoreError::ImageNotFound {
                reference: reference.to_string(),
            })
        })
    }

    /// Reads one image inside `tx`.
    fn image_in(&self, tx: &Transaction<'_>, reference: &str) -> Result<Option<ImageRecord>, StoreError> {
        type Head = (i64, String, String, String, String, Option<String>, String, i64);
        let head: Option<Head> = tx
            .query_row(
                "SELECT m.id, m.digest, m.config_digest, m.os, m.architecture, m.variant,
                        m.config_json, r.created_at
                 FROM image_ref r JOIN manifest m ON m.id = r.manifest_id
                 WHERE r.reference = ?1",
                [reference],
                |row| {
                    Ok((
                        row.get("id")?,
                        row.get("digest")?,
                        row.get("config_digest")?,
                        row.get("os")?,
                        row.get("architecture")?,
                        row.get("variant")?,
                        row.get("config_json")?,
                        row.get("created_at")?,
                    ))
                },
            )
            .optional()
            .map_err(self.db_err("read the image"))?;
        let Some((manifest_id, manifest_digest, config_digest, os, architecture, variant, config_json, created_at)) =
            head
        else {
            return Ok(None);
        };
        let config: ImageConfig = serde_json::from_str(&config_json)
            .map_err(|e| self.bad_row(format!("the config of manifest {manifest_digest} is unreadable: {e}")))?;
        let layers = self.layers_of(tx, manifest_id)?;
        Ok(Some(ImageRecord {
            reference: reference.to_string(),
            manifest_digest,
            config_digest,
            platform: Platform {
                os,
                architecture,
                variant,
            },
            config,
            layers,
            created_at,
        }))
    }

    /// The layers of manifest `id`, bottom first.
    fn layers_of(&self, tx: &Transaction<'_>, manifest_id: i64) -> Result<Vec<LayerRecord>, StoreError> {
        let raw: Vec<RawLayer> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT l.diff_id, ml.blob_digest, ml.media_type, ml.compressed_size, l.erofs_size
                     FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id
                     WHERE ml.manifest_id = ?1 ORDER BY ml.position",
                )
                .map_err(self.db_err("read the image's layers"))?;
            let rows = stmt
                .query_map([manifest_id], raw_layer)
                .map_err(self.db_err("read the image's layers"))?;
            rows.collect::<Result<_, _>>()
                .map_err(self.db_err("read the image's layers"))?
        };
        raw.into_iter().map(|r| self.layer(r)).collect()
    }

    /// Deletes manifest `id` unless a reference still names it or a sandbox pins it; returns
    /// the layers it orphaned.
    fn drop_manifest_if_unused(&self, tx: &Transaction<'_>, id: i64) -> Result<Vec<LayerRecord>, StoreError> {
        let used: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM image_ref WHERE manifest_id = ?1)
                     OR EXISTS (SELECT 1 FROM sandbox s JOIN manifest m ON m.digest = s.manifest_digest
                                WHERE m.id = ?1)",
                [id],
                |row| row.get(0),
            )
            .map_err(self.db_err("check whether the manifest is still used"))?;
        if used {
            return Ok(Vec::new());
        }
        let candidates: Vec<i64> = {
            let mut stmt = tx
                .prepare(
                    "SELECT layer_id FROM manifest_layer WHERE manifest_id = ?1
                     GROUP BY layer_id ORDER BY min(position)",
                )
                .map_err(self.db_err("list the manifest's layers"))?;
            let rows = stmt
                .query_map([id], |row| row.get(0))
                .map_err(self.db_err("list the manifest's layers"))?;
            rows.collect::<Result<_, _>>()
                .map_err(self.db_err("list the manifest's layers"))?
        };
        tx.execute("DELETE FROM manifest WHERE id = ?1", [id])
            .map_err(self.db_err("delete the manifest"))?;
        let mut orphans = Vec::new();
        let mut stmt = tx
            .prepare_cached(
                "SELECT diff_id, blob_digest, media_type, compressed_size, erofs_size
                 FROM layer l WHERE l.id = ?1
                 AND NOT EXISTS (SELECT 1 FROM manifest_layer ml WHERE ml.layer_id = l.id)",
            )
            .map_err(self.db_err("find unused layers"))?;
        for layer_id in candidates {
            let raw = stmt
                .query_row([layer_id], raw_layer)
                .optional()
                .map_err(self.db_err("find unused layers"))?;
            if let Some(raw) = raw {
                orphans.push(self.layer(raw)?);
            }
        }
        Ok(orphans)
    }

    /// A layer record from raw columns, refusing negative sizes.
    fn layer(
        &self,
        (diff_id, blob_digest, media_type, compressed, erofs): RawLayer,
    ) -> Result<LayerRecord, StoreError> {
        let size = |v: i64, what: &str| {
            u64::try_from(v).map_err(|_| self.bad_row(format!("layer {diff_id} has a negative {what} ({v})")))
        };
        Ok(LayerRecord {
            compressed_size: size(compressed, "compressed size")?,
            erofs_size: size(erofs, "EROFS size")?,
            diff_id,
            blob_digest,
            media_type,
        })
    }
}

fn raw_layer(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawLayer> {
    Ok((
        row.get("diff_id")?,
        row.get("blob_digest")?,
        row.get("media_type")?,
        row.get("compressed_size")?,
        row.get("erofs_size")?,
    ))
}

/// Bytes on disk: the EROFS sizes of the distinct layers.
fn total_size(layers: &[LayerRecord]) -> u64 {
    let mut seen = std::collections::BTreeSet::new();
    layers
        .iter()
        .filter(|l| seen.insert(l.diff_id.as_str()))
        .fold(0u64, |sum, l| sum.saturating_add(l.erofs_size))
}
