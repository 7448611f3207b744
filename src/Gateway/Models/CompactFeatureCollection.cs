using System.Collections;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Models;

/// <summary>
/// A connection's features: the ones the connection object implements itself, answered from a short list of
/// types without storing anything per connection, and the others (the gateway middleware's, TLS's, Kestrel's
/// on the models it dispatches) in one small array searched by reference. The stock
/// <see cref="FeatureCollection"/> keeps them in a <see cref="Dictionary{TKey,TValue}"/> that grows to 17
/// buckets and entries — about 600 bytes per connection; here an idle reactor connection's features cost one
/// array of four (88 bytes).
/// </summary>
internal sealed class CompactFeatureCollection(object owner, Type[] ownFeatures) : IFeatureCollection
{
    /// <summary>Room for the middleware's two and TLS's without growing; Kestrel's dispatch adds five more.</summary>
    private const int InitialCapacity = 4;

    // Set features, and features of the owner's set to null (removed) or to another object (replaced).
    private KeyValuePair<Type, object?>[]? _features;
    private int _count;

    public bool IsReadOnly => false;

    public int Revision { get; private set; }

    public object? this[Type key]
    {
        get
        {
            var index = IndexOf(key);
            if (index >= 0)
            {
                return _features![index].Value;
            }

            return Array.IndexOf(ownFeatures, key) >= 0 ? owner : null;
        }
        set
        {
            ArgumentNullException.ThrowIfNull(key);
            var index = IndexOf(key);
            if (index >= 0)
            {
                _features![index] = new(key, value);
            }
            else if (value is not null || Array.IndexOf(ownFeatures, key) >= 0)
            {
                _features ??= new KeyValuePair<Type, object?>[InitialCapacity];
                if (_count == _features.Length)
                {
                    Array.Resize(ref _features, _count * 2);
                }

                _features[_count++] = new(key, value);
            }

            Revision++;
        }
    }

    public TFeature? Get<TFeature>() => (TFeature?)this[typeof(TFeature)];

    public void Set<TFeature>(TFeature? instance) => this[typeof(TFeature)] = instance;

    public IEnumerator<KeyValuePair<Type, object>> GetEnumerator()
    {
        foreach (var type in ownFeatures)
        {
            if (IndexOf(type) < 0)
            {
                yield return new(type, owner);
            }
        }

        for (var i = 0; i < _count; i++)
        {
            if (_features![i].Value is { } value)
            {
                yield return new(_features[i].Key, value);
            }
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private int IndexOf(Type key)
    {
        for (var i = 0; i < _count; i++)
        {
            if (ReferenceEquals(_features![i].Key, key))
            {
                return i;
            }
        }

        return -1;
    }
}
