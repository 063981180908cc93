using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnionDrop.Sealing;

/// <summary>The last record of a sealed stream (docs/sealed-format.md, "Manifest"), as the sealer writes it (<see cref="ManifestReader"/> reads it).</summary>
internal sealed record Manifest(
    [property: JsonPropertyName("format")] string Format,
    [property: JsonPropertyName("reference")] string Reference,
    [property: JsonPropertyName("receivedAt")] string ReceivedAt,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("files")] IReadOnlyList<ManifestFile> Files)
{
    public const string FormatName = "oniondrop-manifest-1";
    private const string TimeFormat = "yyyy-MM-dd'T'HH:mm'Z'";

    /// <summary>UTC, to the minute: enough to order submissions, no more to correlate with network logs.</summary>
    public static string FormatTime(DateTimeOffset t) => t.UtcDateTime.ToString(TimeFormat, CultureInfo.InvariantCulture);

    public static bool TryParseTime(string s, out DateTimeOffset t) =>
        DateTimeOffset.TryParseExact(s, TimeFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out t);

    public byte[] ToUtf8() => JsonSerializer.SerializeToUtf8Bytes(this, ManifestJson.Default.Manifest);
}

internal sealed record ManifestFile(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("contentType")] string ContentType,
    [property: JsonPropertyName("size")] long Size,
    [property: JsonPropertyName("sha256")] string Sha256);

[JsonSerializable(typeof(Manifest))]
[JsonSerializable(typeof(ManifestFile))]
internal partial class ManifestJson : JsonSerializerContext;
