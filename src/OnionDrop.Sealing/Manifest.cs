using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnionDrop.Sealing;

/// <summary>The last record of a sealed stream (docs/sealed-format.md, "Manifest").</summary>
internal sealed record Manifest(
    [property: JsonPropertyName("format")] string Format,
    [property: JsonPropertyName("reference")] string Reference,
    [property: JsonPropertyName("receivedAt")] string ReceivedAt,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("files"), JsonConverter(typeof(BoundedFileList))] IReadOnlyList<ManifestFile> Files)
{
    public const string FormatName = "oniondrop-manifest-1";
    private const string TimeFormat = "yyyy-MM-dd'T'HH:mm'Z'";

    /// <summary>UTC, to the minute: enough to order submissions, no more to correlate with network logs.</summary>
    public static string FormatTime(DateTimeOffset t) => t.UtcDateTime.ToString(TimeFormat, CultureInfo.InvariantCulture);

    public static bool TryParseTime(string s, out DateTimeOffset t) =>
        DateTimeOffset.TryParseExact(s, TimeFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out t);

    public byte[] ToUtf8() => JsonSerializer.SerializeToUtf8Bytes(this, ManifestJson.Default.Manifest);

    /// <summary>Parses and checks the shape; throws <see cref="SealedFormatException"/>.</summary>
    public static Manifest Parse(ReadOnlySpan<byte> json)
    {
        Manifest? m;
        try { m = JsonSerializer.Deserialize(json, ManifestJson.Default.Manifest); }
        catch (JsonException) { throw new SealedFormatException("manifest is not valid JSON"); }
        if (m is null || m.Format != FormatName || m.Reference is null || m.ReceivedAt is null || m.Message is null || m.Files is null
            || m.Files.Any(f => f is null || f.Name is null || f.ContentType is null || f.Sha256 is null))
            throw new SealedFormatException("manifest is incomplete or of an unknown format");
        if (!TryParseTime(m.ReceivedAt, out _)) throw new SealedFormatException("manifest has an invalid receivedAt");
        if (m.Message.Length > SealedFormat.MaxMessageChars) throw new SealedFormatException($"manifest's message is longer than {SealedFormat.MaxMessageChars} characters");
        if (m.Files.Count > SealedFormat.MaxFiles) throw new SealedFormatException($"manifest lists more than {SealedFormat.MaxFiles} files");
        return m;
    }
}

internal sealed record ManifestFile(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("contentType")] string ContentType,
    [property: JsonPropertyName("size")] long Size,
    [property: JsonPropertyName("sha256")] string Sha256);

/// <summary>
/// "files", read no further than <see cref="SealedFormat.MaxFiles"/> entries: 64 MiB of "{}," is 22 million of
/// them, which took 1.5 GB of memory (and 10 CPU-seconds) to read whole before their count was checked.
/// </summary>
internal sealed class BoundedFileList : JsonConverter<IReadOnlyList<ManifestFile>>
{
    public override IReadOnlyList<ManifestFile> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException("files is not an array");
        var files = new List<ManifestFile>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (files.Count == SealedFormat.MaxFiles) throw new SealedFormatException($"manifest lists more than {SealedFormat.MaxFiles} files");
            files.Add(JsonSerializer.Deserialize(ref reader, ManifestJson.Default.ManifestFile)!);
        }
        return files;
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<ManifestFile> value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var file in value) JsonSerializer.Serialize(writer, file, ManifestJson.Default.ManifestFile);
        writer.WriteEndArray();
    }
}

// Unknown members and members given twice are refused: which of two counts is up to the parser, and another opener could show the other.
[JsonSourceGenerationOptions(UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, AllowDuplicateProperties = false)]
[JsonSerializable(typeof(Manifest))]
[JsonSerializable(typeof(ManifestFile))]
internal partial class ManifestJson : JsonSerializerContext;
