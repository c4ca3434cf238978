//! Proof photos: the type told by the bytes (never by the name or the declared type), and the
//! metadata that can say where and when a photo was taken (EXIF with GPS, XMP, IPTC, comments)
//! removed before anything is stored. The image data itself is copied as is — no decoding, so
//! no decoder's bugs, and the picture is exactly what was sent.
//!
//! JPEG: every APPn segment except APP0 (JFIF), an APP2 ICC colour profile and APP14 (Adobe
//! colour transform) is dropped, and every comment — between scans too — and everything after
//! the first end of image (motion-photo videos, secondary images). PNG and WebP keep only the
//! chunks that draw the picture (an allowlist: EXIF, XMP, text, time stamps and unknown chunks
//! go); WebP's EXIF and XMP flags are cleared.
//! Dropping EXIF drops its orientation too: a phone photo taken sideways may show sideways.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Jpeg,
    Png,
    Webp,
}

impl ImageType {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageType::Jpeg => "jpg",
            ImageType::Png => "png",
            ImageType::Webp => "webp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("not a JPEG, PNG or WebP image")]
    Unsupported,
    #[error("a damaged {0} image: {1}")]
    Damaged(&'static str, &'static str),
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The image type of `bytes`, by their signature.
pub fn sniff(bytes: &[u8]) -> Option<ImageType> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageType::Jpeg)
    } else if bytes.starts_with(PNG_SIGNATURE) {
        Some(ImageType::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageType::Webp)
    } else {
        None
    }
}

/// The image without its metadata, and its type.
pub fn clean(bytes: &[u8]) -> Result<(ImageType, Vec<u8>), ImageError> {
    let kind = sniff(bytes).ok_or(ImageError::Unsupported)?;
    let cleaned = match kind {
        ImageType::Jpeg => jpeg(bytes)?,
        ImageType::Png => png(bytes)?,
        ImageType::Webp => webp(bytes)?,
    };
    Ok((kind, cleaned))
}

fn jpeg(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
    let damaged = |why| ImageError::Damaged("JPEG", why);
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..2]);
    let mut at = 2;
    loop {
        // Fill bytes (0xFF runs) may precede a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            return Err(damaged("a segment does not start with a marker"));
        };
        match marker {
            // The first end of image ends it: whatever follows (a phone's appended motion-photo
            // video, a second image, trailing data) is dropped with whatever it says.
            0xD9 => {
                out.extend_from_slice(&[0xFF, 0xD9]);
                return Ok(out);
            }
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&[0xFF, marker]);
                at += 2;
                continue;
            }
            _ => {}
        }
        let len = match (bytes.get(at + 2), bytes.get(at + 3)) {
            (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => return Err(damaged("a truncated segment header")),
        };
        if len < 2 || at + 2 + len > bytes.len() {
            return Err(damaged("a segment longer than the file"));
        }
        let segment = &bytes[at..at + 2 + len];
        let body = &segment[4..];
        let keep = match marker {
            0xE0 | 0xEE => true,                        // JFIF, Adobe colour transform
            0xE2 => body.starts_with(b"ICC_PROFILE\0"), // the colour profile, not MPF/FlashPix
            0xE1 | 0xE3..=0xED | 0xEF => false,         // EXIF/XMP and every other application segment
            0xFE => false,                              // comment
            _ => true,
        };
        if keep {
            out.extend_from_slice(segment);
        }
        at += 2 + len;
        if marker == 0xDA {
            // Start of scan: compressed data up to the next marker (0xFF followed by anything but
            // a stuffed 0x00, a restart marker or fill), which is handled as any segment — so a
            // segment between the scans of a progressive image is judged too.
            let start = at;
            loop {
                match (bytes.get(at), bytes.get(at + 1)) {
                    (Some(0xFF), Some(0x00 | 0xD0..=0xD7)) => at += 2,
                    (Some(0xFF), Some(0xFF)) => at += 1,
                    (Some(0xFF), Some(_)) => break,
                    (Some(_), _) => at += 1,
                    (None, _) => return Err(damaged("no end of image")),
                }
            }
            out.extend_from_slice(&bytes[start..at]);
        }
    }
}

fn png(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
    let damaged = |why| ImageError::Damaged("PNG", why);
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(PNG_SIGNATURE);
    let mut at = PNG_SIGNATURE.len();
    loop {
        let header = bytes.get(at..at + 8).ok_or_else(|| damaged("a truncated chunk"))?;
        let len = usize::try_from(u32::from_be_bytes([header[0], header[1], header[2], header[3]]))
            .map_err(|_| damaged("a chunk too long"))?;
        let kind = &header[4..8];
        let end = at.checked_add(12).and_then(|n| n.checked_add(len)).ok_or_else(|| damaged("a chunk too long"))?;
        let chunk = bytes.get(at..end).ok_or_else(|| damaged("a chunk longer than the file"))?;
        // What draws the picture, nothing else: text, EXIF, time stamps and chunks this code
        // does not know (which may carry either) are dropped.
        if matches!(
            kind,
            b"IHDR"
                | b"PLTE"
                | b"IDAT"
                | b"IEND"
                | b"tRNS"
                | b"gAMA"
                | b"cHRM"
                | b"sRGB"
                | b"iCCP"
                | b"sBIT"
                | b"bKGD"
                | b"pHYs"
                | b"hIST"
                | b"acTL"
                | b"fcTL"
                | b"fdAT"
        ) {
            out.extend_from_slice(chunk);
        }
        at = end;
        if kind == b"IEND" {
            return Ok(out);
        }
    }
}

fn webp(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
    let damaged = |why| ImageError::Damaged("WebP", why);
    let declared = usize::try_from(u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])).unwrap_or(usize::MAX);
    if declared.saturating_add(8) > bytes.len() {
        return Err(damaged("shorter than its header says"));
    }
    // Anything after the declared end is not part of the image.
    let bytes = &bytes[..declared + 8];
    let mut chunks = Vec::with_capacity(bytes.len());
    let mut image = false;
    let mut at = 12;
    while at < bytes.len() {
        let header = bytes.get(at..at + 8).ok_or_else(|| damaged("a truncated chunk"))?;
        let len = usize::try_from(u32::from_le_bytes([header[4], header[5], header[6], header[7]]))
            .map_err(|_| damaged("a chunk too long"))?;
        let padded = len + (len & 1);
        let end = at.checked_add(8 + padded).ok_or_else(|| damaged("a chunk too long"))?;
        // The last chunk's pad byte may be missing.
        let chunk = bytes.get(at..end.min(bytes.len())).ok_or_else(|| damaged("a chunk longer than the file"))?;
        if chunk.len() < 8 + len {
            return Err(damaged("a chunk longer than the file"));
        }
        match &header[..4] {
            b"VP8 " | b"VP8L" | b"ANMF" => {
                image = true;
                chunks.extend_from_slice(chunk);
            }
            b"ALPH" | b"ANIM" | b"ICCP" => chunks.extend_from_slice(chunk),
            b"VP8X" => {
                let mut vp8x = chunk.to_vec();
                if let Some(flags) = vp8x.get_mut(8) {
                    // Bits: 0x08 EXIF present, 0x04 XMP present.
                    *flags &= !(0x08 | 0x04);
                }
                chunks.extend_from_slice(&vp8x);
            }
            // EXIF, XMP and chunks this code does not know.
            _ => {}
        }
        at = end;
    }
    if !image {
        return Err(damaged("no image data"));
    }
    if chunks.len() % 2 == 1 {
        chunks.push(0);
    }
    let size = u32::try_from(chunks.len() + 4).map_err(|_| damaged("too large"))?;
    let mut out = Vec::with_capacity(chunks.len() + 12);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&chunks);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A JPEG's structure with metadata where phones put it: EXIF with GPS, XMP, a comment.
    pub(crate) fn jpeg_with_gps() -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        let segment = |marker: u8, body: &[u8]| {
            let mut s = vec![0xFF, marker];
            s.extend_from_slice(&u16::try_from(body.len() + 2).unwrap().to_be_bytes());
            s.extend_from_slice(body);
            s
        };
        j.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        j.extend(segment(0xE1, b"Exif\0\0MM\0*GPSLatitude 37.5665 N GPSLongitude 126.978 E"));
        j.extend(segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>exif:GPSLatitude</x:xmpmeta>"));
        j.extend(segment(0xFE, b"taken at home"));
        j.extend(segment(0xDB, &[0u8; 65]));
        j.extend(segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
        j.extend(segment(0xE2, b"MPF\0MM\0*second image GPSLatitude"));
        j.extend(segment(0xE2, b"ICC_PROFILE\0\x01\x01colours"));
        j.extend(segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
        j.extend_from_slice(&[0x12, 0x34, 0xFF, 0x00, 0x56, 0xFF, 0xD0, 0x78]);
        // A progressive image's next scan, with an application segment between the scans.
        j.extend(segment(0xE1, b"Exif\0\0between scans GPSLatitude"));
        j.extend(segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
        j.extend_from_slice(&[0x9A, 0xBC]);
        j.extend_from_slice(&[0xFF, 0xD9]);
        // A motion photo's video after the image, with its own location.
        j.extend_from_slice(b"ftypmp4 GPSLatitude \xFF\xD9 taken at home");
        j
    }

    fn png_with_text() -> Vec<u8> {
        let mut p = PNG_SIGNATURE.to_vec();
        let chunk = |kind: &[u8], body: &[u8]| {
            let mut c = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(body);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        };
        p.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]));
        p.extend(chunk(b"eXIf", b"MM\0*GPSLatitude"));
        p.extend(chunk(b"tEXt", b"Comment\0taken at home"));
        p.extend(chunk(b"caBX", b"c2pa manifest GPSLatitude"));
        p.extend(chunk(b"IDAT", &[1, 2, 3]));
        p.extend(chunk(b"IEND", &[]));
        p
    }

    fn webp_with_exif() -> Vec<u8> {
        let chunk = |kind: &[u8], body: &[u8]| {
            let mut c = kind.to_vec();
            c.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
            c.extend_from_slice(body);
            if body.len() % 2 == 1 {
                c.push(0);
            }
            c
        };
        let mut body = b"WEBP".to_vec();
        body.extend(chunk(b"VP8X", &[0x0C, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        body.extend(chunk(b"VP8 ", &[9, 8, 7]));
        body.extend(chunk(b"EXIF", b"MM\0*GPSLatitude"));
        body.extend(chunk(b"XMP ", b"<x:xmpmeta/>"));
        body.extend(chunk(b"C2PA", b"GPSLatitude"));
        let mut w = b"RIFF".to_vec();
        w.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
        w.extend(body);
        w
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn gps_and_other_metadata_are_removed_and_the_picture_kept() {
        for (image, kind) in
            [(jpeg_with_gps(), ImageType::Jpeg), (png_with_text(), ImageType::Png), (webp_with_exif(), ImageType::Webp)]
        {
            let (found, cleaned) = clean(&image).unwrap();
            assert_eq!(found, kind);
            for secret in [b"GPSLatitude".as_slice(), b"taken at home", b"xmpmeta"] {
                assert!(!contains(&cleaned, secret), "{kind:?} still holds {:?}", String::from_utf8_lossy(secret));
            }
            // Cleaning is idempotent: nothing else is touched.
            assert_eq!(clean(&cleaned).unwrap().1, cleaned, "{kind:?}");
        }
        let (_, jpeg) = clean(&jpeg_with_gps()).unwrap();
        assert!(contains(&jpeg, b"JFIF") && contains(&jpeg, b"ICC_PROFILE"));
        assert!(contains(&jpeg, &[0x12, 0x34, 0xFF, 0x00, 0x56, 0xFF, 0xD0, 0x78]), "the first scan's data");
        assert!(jpeg.ends_with(&[0x9A, 0xBC, 0xFF, 0xD9]), "the second scan, then the end: nothing after it");
        assert!(!contains(&jpeg, b"MPF") && !contains(&jpeg, b"ftypmp4"));
        let (_, webp) = clean(&webp_with_exif()).unwrap();
        assert_eq!(webp[20], 0x00, "the VP8X EXIF and XMP flags are cleared");
        assert_eq!(usize::try_from(u32::from_le_bytes([webp[4], webp[5], webp[6], webp[7]])).unwrap(), webp.len() - 8);
    }

    #[test]
    fn the_type_comes_from_the_bytes_and_damage_is_refused() {
        assert_eq!(clean(b"GIF89a......").unwrap_err(), ImageError::Unsupported);
        assert_eq!(clean(b"<svg onload=alert(1)>").unwrap_err(), ImageError::Unsupported);
        assert_eq!(clean(b"").unwrap_err(), ImageError::Unsupported);
        let mut truncated = jpeg_with_gps();
        truncated.truncate(40);
        assert!(matches!(clean(&truncated), Err(ImageError::Damaged("JPEG", _))));
        let mut png = png_with_text();
        png.truncate(png.len() - 12);
        assert!(matches!(clean(&png), Err(ImageError::Damaged("PNG", _))));
        let mut webp = webp_with_exif();
        webp.truncate(30);
        assert!(matches!(clean(&webp), Err(ImageError::Damaged("WebP", _))));
    }
}
